"""The compose stack's services run natively: nginx, Redis (one server or a cluster) and the api
replicas, derived from docker-compose.yml. Used by scripts/stack-native and by the tests."""
