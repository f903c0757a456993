package ebpfexecreceiver

// The otelcol-compilerwatch image is FROM scratch and carries no CA bundle file. This import compiles in the
// Mozilla root set that golang.org/x/crypto maintains, pinned by go.sum, so the exporters' TLS works in the
// image; Go uses it only when the system has no roots of its own, so a bundle mounted at
// /etc/ssl/certs/ca-certificates.crt (or named by SSL_CERT_FILE) still takes precedence. It lives in this
// package because ocb generates the distribution's main package, and ebpf_exec is in every pipeline.
import _ "golang.org/x/crypto/x509roots/fallback"
