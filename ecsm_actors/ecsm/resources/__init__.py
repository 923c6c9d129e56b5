"""Per-resource ECSM clients (services, containers, nodes, images) of the Clientset."""
