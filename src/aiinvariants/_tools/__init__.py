"""The parts of :mod:`aiinvariants.tools` that are not the call decision.

``spec``: a tool's declaration in code (:class:`~aiinvariants.tools.ToolSpec`);
``registration``: the one registration path (``register_tool``,
``guarded_tool``). Users import these names from :mod:`aiinvariants.tools`.
"""
