package audit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// TreeHead is a signed tree head: the log's size and root at a time,
// signed with the audit key. Published elsewhere (a regulator, a public
// page, a witness), it binds the operator to every event it covers.
type TreeHead struct {
	TreeSize  uint64 `json:"tree_size"`
	Timestamp int64  `json:"timestamp"` // unix milliseconds
	RootHash  Hash   `json:"root_hash"`
	KeyID     string `json:"key_id"`
	Signature []byte `json:"signature"`
}

// treeHeadLabel starts every signed message, so that the audit key's
// signatures can mean nothing else.
const treeHeadLabel = "sqin-audit-tree-head/v1\n"

// SignedMessage is what the signature covers: the label
// "sqin-audit-tree-head/v1\n", then tree size and timestamp as big-endian
// uint64, then the 32-byte root hash.
func (th *TreeHead) SignedMessage() []byte {
	b := make([]byte, 0, len(treeHeadLabel)+8+8+len(th.RootHash))
	b = append(b, treeHeadLabel...)
	b = binary.BigEndian.AppendUint64(b, th.TreeSize)
	b = binary.BigEndian.AppendUint64(b, uint64(th.Timestamp))
	return append(b, th.RootHash[:]...)
}

// Time is the timestamp as a time.Time.
func (th *TreeHead) Time() time.Time { return time.UnixMilli(th.Timestamp).UTC() }

// KeyID names a public key: the first 8 bytes, in hexadecimal, of the
// SHA-256 of its PKIX (SubjectPublicKeyInfo) encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// NewKey returns the Ed25519 audit key made from a 32-byte seed (the
// server derives it from its master key).
func NewKey(seed []byte) (ed25519.PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit: key seed must be %d bytes", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Sign fills th's KeyID and Signature with signer: an Ed25519 key signs
// the message, an ECDSA key (P-256) its SHA-256. Any crypto.Signer of
// those kinds works, hardware ones included.
func (th *TreeHead) Sign(signer crypto.Signer) error {
	id, err := KeyID(signer.Public())
	if err != nil {
		return err
	}
	msg := th.SignedMessage()
	var sig []byte
	switch signer.Public().(type) {
	case ed25519.PublicKey:
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		sig, err = signer.Sign(rand.Reader, d[:], crypto.SHA256)
	default:
		return fmt.Errorf("audit: cannot sign tree heads with a %T", signer.Public())
	}
	if err != nil {
		return err
	}
	th.KeyID, th.Signature = id, sig
	return nil
}

// ErrSignature is the error of a tree head whose signature does not verify.
var ErrSignature = errors.New("audit: tree head signature does not verify")

// Verify checks th's signature with pub (ed25519.PublicKey or
// *ecdsa.PublicKey) and that KeyID names pub.
func (th *TreeHead) Verify(pub crypto.PublicKey) error {
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	if th.KeyID != id {
		return fmt.Errorf("%w: signed by key %q, expected %q", ErrSignature, th.KeyID, id)
	}
	msg := th.SignedMessage()
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, msg, th.Signature)
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		ok = ecdsa.VerifyASN1(k, d[:], th.Signature)
	default:
		return fmt.Errorf("audit: cannot verify with a %T", pub)
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

// ParseTreeHead decodes a tree head in the JSON that `sqin audit head`
// prints. Unknown members are refused.
func ParseTreeHead(b []byte) (*TreeHead, error) {
	var th TreeHead
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&th); err != nil {
		return nil, fmt.Errorf("audit: tree head: %w", err)
	}
	if d.More() {
		return nil, errors.New("audit: tree head: data after the JSON object")
	}
	return &th, nil
}
