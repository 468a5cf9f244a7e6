"""Alert envelope, the WebSocket hub and the lobby-manager terminal page."""
