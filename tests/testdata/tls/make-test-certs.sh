#!/bin/sh
# TEST-ONLY certificates for tests/tests/it/tls.rs: a throw-away CA and a
# server certificate for localhost / 127.0.0.1 that it signed, valid for a
# century, plus an unrelated key for the mismatched-pair test. Their private
# keys are public (they are in the repository): never use them for anything
# but these tests. Regenerate with `sh make-test-certs.sh` in this folder.
set -eu
cd "$(dirname "$0")"
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout ca.key -out ca.pem -days 36500 -subj "/CN=hetally TEST-ONLY CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 36500 -extfile server.ext
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key
rm -f server.csr server.ext ca.srl ca.key
