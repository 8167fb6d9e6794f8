//! The xDS v3 Aggregated Discovery Service (state of the world) and the
//! translation of the mesh config into Listeners, RouteConfigurations,
//! Clusters and ClusterLoadAssignments.
//!
//! Being built (issue "Control plane").
