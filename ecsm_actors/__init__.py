"""ecsm-actors: declarative desired state, controllers and self-repair for ECSM.

The package is organised in layers that only point down (see STYLE): cli → supervisor →
controllers → runtime/informer/workqueue → registry client / ecsm client → protocol /
store → api → errors/config/logs.
"""

__version__ = "0.1.0"
