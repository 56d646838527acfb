"""`python -m recipes.cli ...` (and `accelerate launch -m recipes.cli ...`) runs the `currimix` command line."""

from recipes.cli import main

if __name__ == "__main__":
    main()
