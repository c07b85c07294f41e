//! Verified kexec: which certificates this kernel trusts, and whether a PE/COFF Image is
//! signed by one of them (Authenticode, as UEFI Secure Boot and Linux's `KEXEC_SIG` check).
//!
//! - [`pe`]: the PE side (the certificate table, the Authenticode digest), our own: about 200
//!   lines, fuzzed; Google's `authenticode` crate is built on the older `der` 0.7 / `cms` 0.2
//!   stack and can panic on crafted input (docs/trust.md);
//! - [`signed_data`]: the PKCS#7 SignedData, decoded by RustCrypto's `cms` and `x509-cert`,
//!   the signature and the chain checked with `rsa`; signed bytes are hashed as found in the
//!   file ([`tlv`]);
//! - [`esl`]: EFI signature lists, the format of UEFI's `db` and `dbx` and of the trust set
//!   handed to the next kernel;
//! - [`TrustSet`]: the certificates and hashes that decide, from the Image's build, the
//!   initramfs, UEFI's `db`/`dbx` and the kernel before;
//! - [`Policy`], `kexec.verify=off|warn|enforce`.
//!
//! Hashing is the caller's [`Compress`]: the kernel passes its SHA-2 instructions.

pub mod esl;
pub mod pe;
pub mod signed_data;
pub mod tlv;

use crate::formats::sha256::{self, Compress, Sha256};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use der::asn1::ObjectIdentifier;
use pe::{Pe, PeError};
use signed_data::Cert;
use x509_cert::Certificate;

/// What kexec does with an image's signature (`kexec.verify=`, `kexec -l --verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Policy {
    /// Images are not checked.
    #[default]
    Off,
    /// Images are checked; a failure is reported and the load goes on.
    Warn,
    /// Images are checked; a failure refuses the load.
    Enforce,
}

impl Policy {
    /// The policy a `kexec.verify=` value names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "warn" => Some(Self::Warn),
            "enforce" => Some(Self::Enforce),
            _ => None,
        }
    }

    /// Its name, as `kexec.verify=` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Warn => "warn",
            Self::Enforce => "enforce",
        }
    }
}

/// Why an image is not verified: each names the file's field, the certificate or the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The PE/COFF headers cannot be used.
    Pe(PeError),
    /// No signature at all (the security directory is empty).
    Unsigned,
    /// A signature's PKCS#7 does not decode.
    Pkcs7(der::Error),
    /// The SignedData's content is not Authenticode's `SpcIndirectDataContent` (or the
    /// ContentInfo is not SignedData).
    NotAuthenticode(ObjectIdentifier),
    /// Not exactly one SignerInfo.
    SignerCount(usize),
    /// A digest algorithm other than SHA-256.
    DigestAlgorithm(ObjectIdentifier),
    /// A signature algorithm other than RSA PKCS#1 v1.5 with SHA-256.
    SignatureAlgorithm(ObjectIdentifier),
    /// A certificate's key is not RSA.
    KeyAlgorithm {
        /// The certificate's common name.
        cert: String,
        /// Its key's algorithm.
        oid: ObjectIdentifier,
    },
    /// A certificate's RSA key does not decode.
    Key(String),
    /// The image's Authenticode digest is not the one signed: a byte changed.
    ImageDigest {
        /// What the signature covers.
        signed: [u8; 32],
        /// What the image hashes to.
        image: [u8; 32],
    },
    /// The signer has no `messageDigest` attribute.
    NoMessageDigest,
    /// The `messageDigest` attribute is not the content's digest.
    MessageDigest,
    /// A certificate in the signature does not decode.
    Certificate {
        /// Its index among the SignedData's certificates.
        index: usize,
        /// Why.
        error: der::Error,
    },
    /// The SignedData has no certificate matching its signer's issuer and serial number.
    NoSignerCertificate,
    /// A signature does not verify with this certificate's key (or was made over other bytes).
    BadSignature(String),
    /// The chain from the signer ends at a certificate no trusted one issued.
    Untrusted {
        /// The signer's common name.
        signer: String,
        /// The last certificate of the chain found.
        last: String,
        /// Its issuer's common name.
        issuer: String,
    },
    /// More than [`signed_data::CHAIN_MAX`] certificates between the signer and a trusted one.
    ChainTooLong,
    /// The revoked hashes (`dbx`) name the image's digest.
    RevokedImage([u8; 32]),
    /// The revoked certificates (`dbx`) name a certificate of the chain.
    RevokedCertificate(String),
    /// The trust set is empty: nothing can be verified.
    NoTrust,
    /// A certificate on the chain issued another but is not a CA (`basicConstraints`
    /// without `cA`, or `keyUsage` without `keyCertSign`).
    NotACa(String),
    /// An RSA key larger than [`signed_data::RSA_BITS_MAX`].
    KeyTooLarge {
        /// The certificate's common name.
        cert: String,
        /// Its key's size.
        bits: usize,
    },
    /// More than [`signed_data::CERTIFICATES_MAX`] certificates in one signature.
    TooManyCertificates,
    /// More than [`SIGNATURES_MAX`] signatures in one image.
    TooManySignatures(usize),
    /// The signer's `contentType` attribute is missing or is not Authenticode's.
    ContentTypeAttribute,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use sha256::hex;
        match self {
            Self::Pe(e) => write!(f, "{e}"),
            Self::Unsigned => write!(f, "not signed (the PE security directory is empty)"),
            Self::Pkcs7(e) => write!(f, "the signature's PKCS#7 does not decode: {e}"),
            Self::NotAuthenticode(oid) => write!(f, "the signature's content ({oid}) is not Authenticode's SpcIndirectDataContent"),
            Self::SignerCount(n) => write!(f, "the signature has {n} signers, not 1"),
            Self::DigestAlgorithm(oid) => write!(f, "digest algorithm {oid} is not SHA-256"),
            Self::SignatureAlgorithm(oid) => write!(f, "signature algorithm {oid} is not RSA PKCS#1 v1.5 with SHA-256"),
            Self::KeyAlgorithm { cert, oid } => write!(f, "certificate '{cert}' has a key of algorithm {oid}, not RSA"),
            Self::Key(cert) => write!(f, "certificate '{cert}' has an RSA key or signature that does not decode"),
            Self::ImageDigest { signed, image } => write!(f, "the image's Authenticode digest is {}, the signature covers {}: the image was changed", hex(image), hex(signed)),
            Self::NoMessageDigest => write!(f, "the signer has no messageDigest attribute"),
            Self::MessageDigest => write!(f, "the messageDigest attribute is not the digest of the signed content"),
            Self::Certificate { index, error } => write!(f, "certificate {index} in the signature does not decode: {error}"),
            Self::NoSignerCertificate => write!(f, "the signature carries no certificate of its signer"),
            Self::BadSignature(cert) => write!(f, "the signature does not verify with the key of '{cert}'"),
            Self::Untrusted { signer, last, issuer } if signer == last => write!(f, "signed by '{signer}' (issued by '{issuer}'), which no trusted certificate is or issued"),
            Self::Untrusted { signer, last, issuer } => write!(f, "signed by '{signer}', whose chain ends at '{last}' (issued by '{issuer}'), which no trusted certificate is or issued"),
            Self::ChainTooLong => write!(f, "more than {} certificates between the signer and a trusted one", signed_data::CHAIN_MAX),
            Self::RevokedImage(d) => write!(f, "the revoked hashes (dbx) name this image ({})", hex(d)),
            Self::RevokedCertificate(cert) => write!(f, "certificate '{cert}' is revoked (dbx)"),
            Self::NoTrust => write!(f, "no trusted certificate or hash: nothing can be verified"),
            Self::NotACa(cert) => write!(f, "certificate '{cert}' issued another but is not a CA"),
            Self::KeyTooLarge { cert, bits } => write!(f, "certificate '{cert}' has a {bits}-bit RSA key; at most {} bits are accepted", signed_data::RSA_BITS_MAX),
            Self::TooManyCertificates => write!(f, "more than {} certificates in the signature", signed_data::CERTIFICATES_MAX),
            Self::TooManySignatures(n) => write!(f, "{n} signatures; at most {SIGNATURES_MAX} are checked"),
            Self::ContentTypeAttribute => write!(f, "the signer's contentType attribute is missing or not Authenticode's"),
        }
    }
}

impl From<PeError> for VerifyError {
    fn from(e: PeError) -> Self {
        Self::Pe(e)
    }
}

/// A trusted certificate.
#[derive(Clone)]
pub struct Anchor {
    /// Its DER bytes.
    pub der: Vec<u8>,
    /// Decoded.
    pub cert: Certificate,
    /// Its common name, for messages.
    pub name: String,
}

impl fmt::Debug for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Anchor({})", self.name)
    }
}

/// A certificate file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorError {
    /// The DER (or the n-th PEM block's DER) does not decode as an X.509 certificate.
    Der {
        /// The PEM block, from 0 (0 for a DER file).
        block: usize,
        /// Why.
        error: der::Error,
    },
    /// A PEM `BEGIN CERTIFICATE` without its `END`, or bad base64 in it.
    Pem(usize),
    /// Neither DER (a SEQUENCE) nor PEM with a certificate.
    NotACertificate,
}

impl fmt::Display for AnchorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Der { block, error } => write!(f, "certificate {block} is not X.509: {error}"),
            Self::Pem(block) => write!(f, "PEM block {block} is unterminated or not base64"),
            Self::NotACertificate => write!(
                f,
                "neither a DER certificate nor PEM with a BEGIN CERTIFICATE line"
            ),
        }
    }
}

impl Anchor {
    /// A certificate from its DER bytes.
    pub fn from_der(der: &[u8]) -> Result<Self, der::Error> {
        let c = Cert::parse(der)?;
        Ok(Anchor {
            name: signed_data::common_name(&c.cert),
            der: der.into(),
            cert: c.cert,
        })
    }

    /// The certificates of a file: one DER certificate, or PEM with one or more
    /// `BEGIN CERTIFICATE` blocks (text around them, as `openssl x509 -text` writes, is
    /// allowed).
    pub fn parse_file(bytes: &[u8]) -> Result<Vec<Self>, AnchorError> {
        const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
        const END: &[u8] = b"-----END CERTIFICATE-----";
        if bytes.first() == Some(&0x30) {
            return Self::from_der(bytes)
                .map(|a| alloc::vec![a])
                .map_err(|error| AnchorError::Der { block: 0, error });
        }
        let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(begin) = find(rest, BEGIN) {
            let block = out.len();
            let end = find(&rest[begin..], END).ok_or(AnchorError::Pem(block))? + begin + END.len();
            let (_, der) =
                der::pem::decode_vec(&rest[begin..end]).map_err(|_| AnchorError::Pem(block))?;
            out.push(Self::from_der(&der).map_err(|error| AnchorError::Der { block, error })?);
            rest = &rest[end..];
        }
        if out.is_empty() {
            return Err(AnchorError::NotACertificate);
        }
        Ok(out)
    }
}

/// What decides whether an image may run: trusted certificates and image hashes (UEFI's
/// `db`), revoked ones (`dbx`).
#[derive(Debug, Clone, Default)]
pub struct TrustSet {
    /// Trusted certificates.
    pub anchors: Vec<Anchor>,
    /// Images trusted by their Authenticode SHA-256 (`db`'s `EFI_CERT_SHA256` entries).
    pub allowed_images: Vec<[u8; 32]>,
    /// Revoked image digests.
    pub revoked_images: Vec<[u8; 32]>,
    /// Revoked certificates, as the SHA-256 of their TBS bytes: what `dbx` names by TBS
    /// hash, and the certificates it names whole (compared by TBS: the part outside it, the
    /// outer algorithm's parameters, can be re-encoded without breaking the issuer's
    /// signature).
    pub revoked_tbs: Vec<[u8; 32]>,
}

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The image's Authenticode SHA-256.
    pub digest: [u8; 32],
    /// The signer and the trusted certificate, or `None` when `db` names the image's hash.
    pub signer: Option<signed_data::Signer>,
    /// The bytes of the image the digest covers (all but the certificate table): what is
    /// to be loaded.
    pub signed_len: usize,
}

impl TrustSet {
    /// Adds a trusted certificate, unless it is there already.
    pub fn add_anchor(&mut self, a: Anchor) -> bool {
        if self.anchors.iter().any(|b| b.der == a.der) {
            return false;
        }
        self.anchors.push(a);
        true
    }

    /// Adds what a `db`-style list trusts: certificates and image hashes. Entries of other
    /// types are skipped; returns how many were added, or the first certificate that does
    /// not decode.
    pub fn add_db(&mut self, lists: &[u8]) -> Result<usize, DbError> {
        let mut added = 0;
        for (index, e) in esl::entries(lists)
            .map_err(DbError::List)?
            .into_iter()
            .enumerate()
        {
            match e.kind {
                esl::X509 => {
                    let a = Anchor::from_der(e.data)
                        .map_err(|error| DbError::Certificate { index, error })?;
                    added += usize::from(self.add_anchor(a));
                }
                esl::SHA256 => {
                    if let Ok(h) = <[u8; 32]>::try_from(e.data) {
                        self.allowed_images.push(h);
                        added += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(added)
    }

    /// Adds what a `dbx`-style list revokes: image hashes, certificates (by their TBS hash; one
    /// that does not decode can match no certificate this checks), certificates' TBS hashes.
    /// Returns how many new entries were added (one seen before is not added again).
    pub fn add_dbx(&mut self, lists: &[u8], compress: Compress) -> Result<usize, DbError> {
        fn push<T: PartialEq>(v: &mut Vec<T>, x: T) -> usize {
            if v.contains(&x) {
                return 0;
            }
            v.push(x);
            1
        }
        let mut added = 0;
        for e in esl::entries(lists).map_err(DbError::List)? {
            let hash = e.data.get(..32).and_then(|h| <[u8; 32]>::try_from(h).ok());
            added += match (e.kind, hash) {
                (esl::SHA256, Some(h)) => push(&mut self.revoked_images, h),
                (esl::X509_SHA256, Some(h)) => push(&mut self.revoked_tbs, h),
                (esl::X509, _) => match Cert::parse(e.data) {
                    Ok(c) => push(&mut self.revoked_tbs, Sha256::digest(compress, c.tbs)),
                    Err(_) => 0,
                },
                _ => 0,
            };
        }
        Ok(added)
    }

    /// The trusted part as signature lists (what [`TrustSet::add_db`] reads back).
    pub fn db_lists(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for a in &self.anchors {
            esl::push_list(&mut out, esl::X509, &[&a.der]);
        }
        let hashes: Vec<&[u8]> = self.allowed_images.iter().map(|h| &h[..]).collect();
        esl::push_list(&mut out, esl::SHA256, &hashes);
        out
    }

    /// The revoked part as signature lists (what [`TrustSet::add_dbx`] reads back; a TBS
    /// hash's revocation time is written as zero: any time).
    pub fn dbx_lists(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let hashes: Vec<&[u8]> = self.revoked_images.iter().map(|h| &h[..]).collect();
        esl::push_list(&mut out, esl::SHA256, &hashes);
        let tbs: Vec<Vec<u8>> = self
            .revoked_tbs
            .iter()
            .map(|h| [&h[..], &[0; 16]].concat())
            .collect();
        esl::push_list(
            &mut out,
            esl::X509_SHA256,
            &tbs.iter().map(|t| &t[..]).collect::<Vec<_>>(),
        );
        out
    }

    /// How many images and certificates are revoked.
    pub fn revoked_count(&self) -> usize {
        self.revoked_images.len() + self.revoked_tbs.len()
    }

    /// Revokes a certificate (DER): its TBS hash is added; `false` if it does not decode.
    pub fn revoke_certificate(&mut self, der: &[u8], compress: Compress) -> bool {
        let Ok(c) = Cert::parse(der) else {
            return false;
        };
        let h = Sha256::digest(compress, c.tbs);
        if !self.revoked_tbs.contains(&h) {
            self.revoked_tbs.push(h);
        }
        true
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty() && self.allowed_images.is_empty()
    }

    /// Refuses a certificate whose TBS bytes are revoked.
    pub(crate) fn check_revoked(
        &self,
        tbs: &[u8],
        cert: &Certificate,
        compress: Compress,
    ) -> Result<(), VerifyError> {
        if !self.revoked_tbs.is_empty() && self.revoked_tbs.contains(&Sha256::digest(compress, tbs))
        {
            return Err(VerifyError::RevokedCertificate(signed_data::common_name(
                cert,
            )));
        }
        Ok(())
    }

    /// Drops the trusted certificates that the revoked ones name; returns their names.
    pub fn drop_revoked_anchors(&mut self, compress: Compress) -> Vec<String> {
        let (keep, dropped): (Vec<Anchor>, Vec<Anchor>) = core::mem::take(&mut self.anchors)
            .into_iter()
            .partition(|a| {
                let tbs = Cert::parse(&a.der).map(|c| c.tbs).unwrap_or(&[]);
                self.check_revoked(tbs, &a.cert, compress).is_ok()
            });
        self.anchors = keep;
        dropped.into_iter().map(|a| a.name).collect()
    }
}

/// A `db` or `dbx` list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// The lists' sizes do not add up.
    List(esl::EslError),
    /// An `EFI_CERT_X509` entry does not decode.
    Certificate {
        /// The entry's index.
        index: usize,
        /// Why.
        error: der::Error,
    },
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::List(e) => write!(f, "{e}"),
            Self::Certificate { index, error } => {
                write!(f, "entry {index} (X.509) does not decode: {error}")
            }
        }
    }
}

/// How many signatures of one image are checked (each costs RSA verifications).
pub const SIGNATURES_MAX: usize = 4;

/// Verifies `image` (a PE/COFF file, as it will be loaded) against `trust`: its digest is
/// not revoked, and `db` names it or one of its signatures verifies.
pub fn verify_image(
    image: &[u8],
    trust: &TrustSet,
    compress: Compress,
) -> Result<Verified, VerifyError> {
    let pe = Pe::parse(image)?;
    let digest = pe.authenticode_sha256(compress);
    if trust.revoked_images.contains(&digest) {
        return Err(VerifyError::RevokedImage(digest));
    }
    let signed_len = pe.signed_len();
    if trust.allowed_images.contains(&digest) {
        for p7 in pe.signatures().unwrap_or_default() {
            signed_data::check_revoked_certificates(p7, trust, compress)?;
        }
        return Ok(Verified {
            digest,
            signer: None,
            signed_len,
        });
    }
    let signatures = pe.signatures()?;
    if signatures.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    if signatures.len() > SIGNATURES_MAX {
        return Err(VerifyError::TooManySignatures(signatures.len()));
    }
    if trust.is_empty() {
        return Err(VerifyError::NoTrust);
    }
    let mut last = VerifyError::Unsigned;
    for p7 in signatures {
        match signed_data::verify(p7, &digest, trust, compress) {
            Ok(s) => {
                return Ok(Verified {
                    digest,
                    signer: Some(s),
                    signed_len,
                })
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests;
