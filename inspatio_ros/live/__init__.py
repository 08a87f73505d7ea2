"""Live views of a running SimSession, without ROS (foxglove.py: a Foxglove WebSocket server)."""
