//! Load balancing over an endpoint set: round robin, weighted round robin, weighted random, least request (P2C), peak EWMA, ring hash and Maglev, with a panic threshold and slow start.
//!
//! Being built (issue "Foundation").
