"""The command-line commands, one module each: ``build_parser()`` and ``main(argv) -> exit status``.

``sb3-selfplay <command>`` (:mod:`sb3_selfplay.zoo.cli`), ``python -m sb3_selfplay <command>`` and the
``zoo_scripts/<command>.py`` shims all run these.
"""
