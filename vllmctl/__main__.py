"""`python -m vllmctl`."""

from vllmctl.cli import main

if __name__ == "__main__":
    main()
