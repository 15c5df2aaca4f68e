"""`stockbot play`: the real bot on the built-in sandbox, with a browser page to chat with it.

An edge (top floor): it wires the product's own runtime (`bot.conversation.running_bot`, the
event worker, the sender, the scheduler, the integration API) to the sandbox and serves a page
over what the sandbox saw. See docs/play.md.
"""
