"""pbrbot: quoted, linked answers from a blog archive, in Discord and the terminal."""

__version__ = "0.1.0"
