from mindmirror.cli import app

app()
