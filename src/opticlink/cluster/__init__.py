"""Many nodes on one catalog: camera ownership by leases (`ownership`, `node`), forwarding a camera's
streams and routes to its owner (`proxy`), and worker processes sharing a port (`workers`)."""
