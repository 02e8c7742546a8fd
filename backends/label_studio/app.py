"""ASGI entry of the autoannotate ML backend for Label Studio.

    uvicorn app:app --host 0.0.0.0 --port 9090

Configuration comes from environment variables (see README.md here); the functions are loaded
when the app is created, so Label Studio's short /health and /setup timeouts are met.
"""

from autoannotate.label_studio.app import Settings, create_app

app = create_app(Settings.from_env())
