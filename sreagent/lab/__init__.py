"""The lab: live fault injection on this host (``sreagent.lab.live``).

The synthetic scenario library lives in ``sreagent.scenarios``; this package makes the same
faults happen for real, so the live collector and controller can be tested against them.
"""
