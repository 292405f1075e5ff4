"""``python -m nmfsep``: the same as the ``nmfsep`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="nmfsep")
