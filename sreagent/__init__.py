"""sreagent: an incident lab for Linux, Kubernetes, GPU and AI infrastructure."""

__version__ = "0.1.0"
