"""ASGI entry of the autoannotate ML backend for Label Studio.

    uvicorn app:app --host 0.0.0.0 --port 9090
    python app.py                      # host and port from AUTOANNOTATE_HOST / AUTOANNOTATE_PORT

Configuration comes from environment variables, read by ``autoannotate.settings.Settings``
(see README.md here); the functions are loaded when the app is created, so Label Studio's short
/health and /setup timeouts are met.
"""

from autoannotate.label_studio.app import create_app, log_at
from autoannotate.settings import Settings

settings = Settings.from_env()
log_at("info")  # the Label Studio connection check and every error answer reach the console
app = create_app(settings)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host=settings.host, port=settings.port)  # the app above: models load once
