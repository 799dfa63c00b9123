"""Each Lua script of ``broker/lua/`` as a typed call: its keys and its arguments as small frozen
dataclasses, and the decoder of its reply, side by side, one module per script.

The mechanics (key count from the file name, SHA and auto-pipeline, waiting out outages for the
repeatable scripts) stay in ``scripts.py``; these modules only say what goes in and what comes
back. A script reaches the keys it is given, plus the key families its call's docstring names,
which it derives at run time from the namespace's prefix (``key_of`` in ``lua/_lib.lua``), so
they share the given keys' hash slot. Strings a script shares with Python (outcomes, verdicts,
operations, reasons) are a Lua table on one side and an enum here on the other;
``tests/unit/test_lua_contract.py`` holds the two together.
"""
