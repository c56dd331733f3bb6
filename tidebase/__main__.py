"""``python -m tidebase …``: the same CLI as the ``tidebase`` command."""

from tidebase.cli import main

if __name__ == "__main__":
    main()
