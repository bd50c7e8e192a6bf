"""What a config change does: the semantic diff behind ``omnisync diff``.

- ``model``: the plain result (:class:`~omnisync.review.model.Review`, changes, effects);
- ``compare``: objects flattened to dotted fields and compared field by field (pure);
- ``effects``: each change's consequence in Omnisend, with stable codes and risks (pure);
- ``cost``: requests and minutes under a connection's rate limits (pure);
- ``schedules``: runs per day of a schedule (pure);
- ``review``: the whole review of two configs (pure; member counts injected);
- ``render_text``, ``render_markdown``, ``render_machine`` (json and github annotations);
- ``revisions``: a git revision's config files in a temporary directory (the git shell);
- ``members``: member counts from the state store, read-only (the state shell).
"""
