"""The server's own web page: a gallery of the history, a queue, the models and a
small canvas client, served at the server's address.

The page is a client like any other: it talks the documented websocket protocol
and the JSON routes, with the same token and origin rules. Its files are static
(``static/``) and ship inside the package, so it works offline.
"""

from .routes import WebViews, add_web_routes

__all__ = ["WebViews", "add_web_routes"]
