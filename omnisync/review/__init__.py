"""What a config change does: the semantic diff behind ``omnisync diff``.

Pure but for ``revisions`` (a git revision's config in a temporary directory)
and ``members`` (member counts from the state store, read-only).
"""
