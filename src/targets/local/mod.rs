//! The embedded local sandbox: real processes supervised by gameday, with faults injected
//! through signals, gameday's own L4 proxy, DNS server and spot-notice endpoint.
