"""The web console (issue 16): where budget experts and the consolidation group see deviations, act
on them, record field visits and run a reconciliation. ``create_app(engine, config)`` builds the
application (web/app.py); ``demo_user(engine)`` gives the demo store a consolidation user.
docs/console.md says how to start it and what each page does.
"""

from web.app import create_app
from web.users import demo_user

__all__ = ["create_app", "demo_user"]
