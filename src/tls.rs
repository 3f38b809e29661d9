//! TLS for the HTTPS this server calls (webhook receivers): rustls with the `ring`
//! provider, which builds from the crate alone (no system OpenSSL, no CMake).

/// Makes `ring` the process's rustls provider, once; every `reqwest` client built after this
/// uses it. Idempotent, and harmless when another provider was installed first.
pub fn install_provider() {
    // Deprecated only for lacking post-quantum key exchange; aws-lc-rs has it but needs
    // CMake and a long C build. Webhook receivers negotiate X25519 or P-256 with it.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}
