//! Helpers shared by the end-to-end tests (start `cairnd` on a free port with a temp data dir).
