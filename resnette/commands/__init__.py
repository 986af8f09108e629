"""One module per command-line verb (`resnette <verb>`): each has the function that does the
work (also the Python API of that verb) and `main(args)`, which prints its result.

resnette/cli.py only parses the arguments and calls `main` of the chosen module.
"""
