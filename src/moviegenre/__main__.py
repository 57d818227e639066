from moviegenre.cli import app

app(prog_name="moviegenre")
