"""The package's error for bad input: arguments, files and records a user gave.

Every error the package raises about its input derives from `InputError`, a
`ValueError` as in Keras: the command line prints its message as one line
(`keras-odetoode: error: …`, exit status 2) instead of a traceback.
"""


class InputError(ValueError):
    """Bad input: an argument, a file or a record that the package cannot use.

    The message says what was received and what was expected.
    """
