//! Consumer groups (issue 4): durable committed offsets and acks, in-memory leases,
//! redelivery and dead letters. Reserved for the group engine; wired into the router by the
//! lead once both land.
