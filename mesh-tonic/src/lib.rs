//! # mesh-tonic: gRPC through the mesh
//!
//! Not built yet (issue "mesh-tonic"). It will hold `MeshChannel`, a tonic
//! `GrpcService` over mesh-tower's client stack with outcomes classified by
//! `grpc-status`, deadline propagation, active health checking, and the
//! server-side layer for tonic servers.
