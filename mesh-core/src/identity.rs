//! SPIFFE identities: `spiffe://<trust_domain>/ns/<namespace>/svc/<service>`, parsed and formatted.
//!
//! Being built (issue "Foundation").
