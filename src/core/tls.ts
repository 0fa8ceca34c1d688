/**
 * TLS failures, Postgres and Redis alike, as one cause and one hint. A server
 * certificate the client rejects, or a TLS handshake that fails, is a setting
 * to fix (CA file, host name, sslmode, server config), not a blip: kind
 * 'input' (exit 2, a worker does not retry). The caller supplies how to give
 * a CA for its service (`sslrootcert=` for Postgres, NODE_EXTRA_CA_CERTS for Redis).
 */

/** Node/OpenSSL codes for a server certificate chain the client does not trust. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
]);

export interface TlsProblem {
  cause: string;
  hint: string;
}

/** A TLS failure described for a person, or undefined when `e` is not one. */
export function tlsProblem(e: unknown, o: { host: string; howToTrust: string }): TlsProblem | undefined {
  const err = e as { code?: string; message?: string } | undefined;
  const code = err?.code ?? '';
  const detail = `${err?.message ?? String(e)}${code ? ` (${code})` : ''}`;
  if (UNTRUSTED.has(code)) {
    return { cause: `TLS: server certificate not trusted: ${detail}`, hint: `${o.howToTrust}; the CA must be the one that signed the server's certificate.` };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      cause: `TLS: server certificate is not valid for host "${o.host}": ${detail}`,
      hint: 'Connect with a host name the certificate lists (its subjectAltName), or fix the certificate.',
    };
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return {
      cause: `TLS: server certificate ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'} (${code})`,
      hint: 'Renew the certificate on the server, and check both clocks.',
    };
  }
  if (code.startsWith('ERR_SSL_') || /^(CERT_|UNABLE_TO_)/.test(code)) {
    return {
      cause: `TLS handshake failed: ${detail}`,
      hint: 'Check the TLS settings of both sides: protocol versions, and a client certificate if the server asks for one.',
    };
  }
  return undefined;
}
