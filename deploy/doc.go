// Package deploy holds no code: its tests check the deployment files
// beside it and at the repository's root (Dockerfile, the systemd unit,
// the Helm chart) the way CI can without a registry or a cluster.
package deploy
