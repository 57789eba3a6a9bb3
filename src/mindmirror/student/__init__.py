"""The student side: training rows, models, training, generation. Never imports the teacher."""
