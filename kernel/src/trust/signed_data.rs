//! An Authenticode signature: the PKCS#7 SignedData in a PE file's certificate table,
//! checked against the image's digest and a [`TrustSet`].
//!
//! The checks, in order (as EDK2's `Pkcs7Verify` and Linux's `verify_pefile_signature`):
//! the content is an `SpcIndirectDataContent` whose SHA-256 digest is the image's; the signer's
//! `messageDigest` attribute is the SHA-256 of that content; the signer's RSA PKCS#1 v1.5
//! signature over the signed attributes verifies with its certificate's key; the signer's
//! certificate leads, through certificates in the SignedData, to a trusted one in at most
//! [`CHAIN_MAX`] steps; no certificate on the way is revoked. Validity times are not checked,
//! as neither UEFI nor Linux checks them for images (a board has no trusted clock).

use super::tlv::{self, CONTEXT_0, OCTET_STRING, SET};
use super::{TrustSet, VerifyError};
use crate::formats::sha256::{Compress, Sha256};
use alloc::string::String;
use alloc::vec::Vec;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier as Oid, OctetString};
use der::Decode;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::Pkcs1v15Sign;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

/// How many certificates a chain may have between the signer and a trusted one.
pub const CHAIN_MAX: usize = 8;
/// How many certificates a SignedData may carry (Debian's carry 1, sbsign with
/// intermediates a few): each is a candidate issuer, an RSA verification per step.
pub const CERTIFICATES_MAX: usize = 32;
/// The largest RSA key accepted, in bits (rsa's own limit is 8192; UEFI keys are 2048-4096).
pub const RSA_BITS_MAX: usize = 4096;

/// `id-signedData` (RFC 5652).
const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// `SPC_INDIRECT_DATA_OBJID` (Authenticode).
const SPC_INDIRECT_DATA: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `id-messageDigest` (RFC 5652).
const ID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
/// `id-contentType` (RFC 5652): the signed attribute that binds the signature to the
/// content's type.
const ID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
/// `SPC_PE_IMAGE_DATAOBJ` (Authenticode): what an `SpcIndirectDataContent` for a PE image
/// names as its data.
const SPC_PE_IMAGE_DATA: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// `id-sha256` (RFC 5754).
const ID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `rsaEncryption` (RFC 8017): what OpenSSL and `sbsign` write as the signature algorithm.
const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
/// `sha256WithRSAEncryption` (RFC 8017).
const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");

/// A certificate from the SignedData, with its original bytes.
pub(super) struct Cert<'a> {
    /// The whole certificate, as signed into the file.
    pub raw: &'a [u8],
    /// Its `tbsCertificate`, the bytes its issuer signed.
    pub tbs: &'a [u8],
    /// Decoded.
    pub cert: Certificate,
}

impl<'a> Cert<'a> {
    /// Decodes one certificate, keeping its bytes.
    pub fn parse(raw: &'a [u8]) -> Result<Self, der::Error> {
        let (outer, _) = tlv::read(raw)?;
        let tbs = tlv::nth(outer.value, 0)?.raw;
        Ok(Cert {
            raw,
            tbs,
            cert: Certificate::from_der(raw)?,
        })
    }
}

/// A certificate's subject for messages: its common name, or else its organization (as in
/// the snakeoil certificate of Debian's EDK2), or `"?"`. Not the whole `Name`: formatting it
/// pulls const-oid's name database (about 110 KiB).
pub fn common_name(c: &Certificate) -> String {
    short_name(c.tbs_certificate().subject())
}

/// The short name of a certificate's issuer (see [`common_name`]).
pub fn issuer_name(c: &Certificate) -> String {
    short_name(c.tbs_certificate().issuer())
}

fn short_name(n: &x509_cert::name::Name) -> String {
    match (n.common_name(), n.organization()) {
        (Ok(Some(cn)), _) | (_, Ok(Some(cn))) => String::from(cn.value()),
        _ => String::from("?"),
    }
}

/// RSA PKCS#1 v1.5 with SHA-256: `sig` over the message whose digest is `hashed`, with the
/// key of `signer`.
pub fn rsa_sha256(signer: &Certificate, hashed: &[u8; 32], sig: &[u8]) -> Result<(), VerifyError> {
    let spki = signer.tbs_certificate().subject_public_key_info();
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(VerifyError::KeyAlgorithm {
            cert: common_name(signer),
            oid: spki.algorithm.oid,
        });
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .and_then(|k| rsa::PublicKey::from_pkcs1_der(k).ok())
        .ok_or_else(|| VerifyError::Key(common_name(signer)))?;
    if key.size() * 8 > RSA_BITS_MAX {
        return Err(VerifyError::KeyTooLarge {
            cert: common_name(signer),
            bits: key.size() * 8,
        });
    }
    key.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), hashed, sig)
        .map_err(|_| VerifyError::BadSignature(common_name(signer)))
}

/// Whether `c` may issue certificates: `basicConstraints` says `cA`, and `keyUsage`, if
/// present, allows `keyCertSign` (RFC 5280 4.2.1.9, 4.2.1.3; what OpenSSL, and so EDK2,
/// requires of every issuer on a chain).
pub fn is_ca(c: &Certificate) -> bool {
    let tbs = c.tbs_certificate();
    let ca = matches!(tbs.get_extension::<BasicConstraints>(), Ok(Some((_, b))) if b.ca);
    let usage = match tbs.get_extension::<KeyUsage>() {
        Ok(None) => true,
        Ok(Some((_, u))) => u.key_cert_sign(),
        Err(_) => false,
    };
    ca && usage
}

/// Whether `issuer` signed `cert`: its name is `cert`'s issuer, it is a CA, and its key
/// verifies the signature over `cert`'s TBS bytes.
fn issued_by(cert: &Cert<'_>, issuer: &Certificate, compress: Compress) -> Result<(), VerifyError> {
    if cert.cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return Err(VerifyError::BadSignature(common_name(&cert.cert)));
    }
    if !is_ca(issuer) {
        return Err(VerifyError::NotACa(common_name(issuer)));
    }
    let alg = cert.cert.signature_algorithm().oid;
    if alg != SHA256_WITH_RSA {
        return Err(VerifyError::SignatureAlgorithm(alg));
    }
    let sig = cert
        .cert
        .signature()
        .as_bytes()
        .ok_or_else(|| VerifyError::Key(common_name(&cert.cert)))?;
    rsa_sha256(issuer, &Sha256::digest(compress, cert.tbs), sig)
}

/// The raw parts the signature covers: the certificates, and the signer's signed attributes
/// (the contents of its `[0] IMPLICIT SET OF`).
/// ContentInfo { type, [0] { SignedData { version, digests, content, [0] certs, [1] crls,
/// SET OF SignerInfo } } }.
fn raw_parts(p7: &[u8]) -> Result<(Vec<&[u8]>, &[u8]), der::Error> {
    let (content_info, _) = tlv::read(p7)?;
    let signed_data = tlv::nth(tlv::nth(content_info.value, 1)?.value, 0)?;
    let mut certs = Vec::new();
    let mut signer_infos = None;
    for element in tlv::elements(signed_data.value) {
        let element = element?;
        match element.tag {
            CONTEXT_0 => {
                for c in tlv::elements(element.value) {
                    certs.push(c?.raw);
                }
            }
            SET => signer_infos = Some(element.value),
            _ => {}
        }
    }
    let signer = tlv::nth(signer_infos.unwrap_or_default(), 0)?;
    let attrs = tlv::elements(signer.value)
        .filter_map(Result::ok)
        .find(|t| t.tag == CONTEXT_0)
        .map_or(&[][..], |t| t.value);
    Ok((certs, attrs))
}

/// Who signed, and which trusted certificate vouched for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The signer's common name.
    pub signer: String,
    /// The trusted certificate's common name.
    pub anchor: String,
}

/// Checks one Authenticode SignedData `p7` against `digest` and `trust`.
pub fn verify(
    p7: &[u8],
    digest: &[u8; 32],
    trust: &TrustSet,
    compress: Compress,
) -> Result<Signer, VerifyError> {
    let p7 = without_padding(p7)?;
    let content_info = ContentInfo::from_der(p7).map_err(VerifyError::Pkcs7)?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(VerifyError::NotAuthenticode(content_info.content_type));
    }
    let sd: SignedData = content_info
        .content
        .decode_as()
        .map_err(|e| certificate_error(p7).unwrap_or(VerifyError::Pkcs7(e)))?;
    let content_type = sd.encap_content_info.econtent_type;
    let (Some(content), true) = (
        &sd.encap_content_info.econtent,
        content_type == SPC_INDIRECT_DATA,
    ) else {
        return Err(VerifyError::NotAuthenticode(content_type));
    };
    let spc = content.value();
    check_image_digest(spc, digest)?;
    if sd.certificates.as_ref().map_or(0, |c| c.0.len()) > CERTIFICATES_MAX {
        return Err(VerifyError::TooManyCertificates);
    }
    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(VerifyError::SignerCount(sd.signer_infos.0.len()));
    };
    check_signer_info(si, spc, compress)?;

    let (raw_certs, raw_attrs) = raw_parts(p7).map_err(VerifyError::Pkcs7)?;
    let certs = raw_certs
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            Cert::parse(raw).map_err(|error| VerifyError::Certificate { index, error })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let SignerIdentifier::IssuerAndSerialNumber(id) = &si.sid else {
        return Err(VerifyError::NoSignerCertificate);
    };
    let signer = certs
        .iter()
        .position(|c| {
            let tbs = c.cert.tbs_certificate();
            tbs.issuer() == &id.issuer && tbs.serial_number() == &id.serial_number
        })
        .ok_or(VerifyError::NoSignerCertificate)?;
    // The signature covers the attributes DER-encoded as a SET OF (tag 0x31, not the
    // [0] IMPLICIT they are stored under), from the original bytes.
    let mut signed = Sha256::new(compress);
    signed.update(&[SET]);
    signed.update(&der_length(raw_attrs.len()));
    signed.update(raw_attrs);
    rsa_sha256(
        &certs[signer].cert,
        &signed.finish(),
        si.signature.as_bytes(),
    )?;
    chain(&certs, signer, trust, compress)
}

/// The SignedData of a `WIN_CERTIFICATE`: its length may include the padding to 8 bytes
/// (signtool counts it), so the first DER element, with only zeros after it.
fn without_padding(p7: &[u8]) -> Result<&[u8], VerifyError> {
    let (whole, padding) = tlv::read(p7).map_err(VerifyError::Pkcs7)?;
    if padding.iter().any(|&b| b != 0) {
        return Err(VerifyError::Pkcs7(
            der::ErrorKind::TrailingData {
                decoded: der::Length::try_from(whole.raw.len()).unwrap_or_default(),
                remaining: der::Length::try_from(padding.len()).unwrap_or_default(),
            }
            .into(),
        ));
    }
    Ok(whole.raw)
}

/// The signer's algorithms (SHA-256, RSA PKCS#1 v1.5) and signed attributes: the
/// `messageDigest` is the SHA-256 of the content's contents, and the `contentType` binds the
/// signature to Authenticode's content (a signature its key made over other CMS content
/// cannot stand in).
fn check_signer_info(si: &SignerInfo, spc: &[u8], compress: Compress) -> Result<(), VerifyError> {
    if si.digest_alg.oid != ID_SHA256 {
        return Err(VerifyError::DigestAlgorithm(si.digest_alg.oid));
    }
    let alg = si.signature_algorithm.oid;
    if alg != RSA_ENCRYPTION && alg != SHA256_WITH_RSA {
        return Err(VerifyError::SignatureAlgorithm(alg));
    }
    let attribute = |oid: Oid| {
        si.signed_attrs
            .iter()
            .flat_map(|a| a.iter())
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.get(0))
    };
    let message_digest = attribute(ID_MESSAGE_DIGEST)
        .ok_or(VerifyError::NoMessageDigest)?
        .decode_as::<OctetString>()
        .map_err(VerifyError::Pkcs7)?;
    if message_digest.as_bytes() != Sha256::digest(compress, spc) {
        return Err(VerifyError::MessageDigest);
    }
    if attribute(ID_CONTENT_TYPE).and_then(|v| v.decode_as::<Oid>().ok()) != Some(SPC_INDIRECT_DATA)
    {
        return Err(VerifyError::ContentTypeAttribute);
    }
    Ok(())
}

/// The content's `messageDigest DigestInfo` is SHA-256 and equals the image's digest.
/// SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue,
/// messageDigest DigestInfo }, DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }.
fn check_image_digest(spc: &[u8], digest: &[u8; 32]) -> Result<(), VerifyError> {
    // SpcAttributeTypeAndOptionalValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY }
    let data = tlv::nth(spc, 0).map_err(VerifyError::Pkcs7)?;
    let data_type = tlv::nth(data.value, 0).map_err(VerifyError::Pkcs7)?;
    let data_type = Oid::from_der(data_type.raw).map_err(VerifyError::Pkcs7)?;
    if data_type != SPC_PE_IMAGE_DATA {
        return Err(VerifyError::NotAuthenticode(data_type));
    }
    let digest_info = tlv::nth(spc, 1).map_err(VerifyError::Pkcs7)?;
    let algorithm = tlv::nth(digest_info.value, 0).map_err(VerifyError::Pkcs7)?;
    let oid = tlv::nth(algorithm.value, 0).map_err(VerifyError::Pkcs7)?;
    let oid = Oid::from_der(oid.raw).map_err(VerifyError::Pkcs7)?;
    if oid != ID_SHA256 {
        return Err(VerifyError::DigestAlgorithm(oid));
    }
    let signed = tlv::nth(digest_info.value, 1).map_err(VerifyError::Pkcs7)?;
    let signed: [u8; 32] = match (signed.tag, signed.value.try_into()) {
        (OCTET_STRING, Ok(d)) => d,
        _ => {
            return Err(VerifyError::Pkcs7(
                der::Tag::OctetString.value_error().into(),
            ))
        }
    };
    if &signed != digest {
        return Err(VerifyError::ImageDigest {
            signed,
            image: *digest,
        });
    }
    Ok(())
}

/// Refuses a signature one of whose certificates is revoked (an image `db` trusts by its
/// hash is still refused when its signer is in `dbx`, as in EDK2). Certificates that do not
/// decode are passed over: nothing trusts them here.
pub fn check_revoked_certificates(
    p7: &[u8],
    trust: &TrustSet,
    compress: Compress,
) -> Result<(), VerifyError> {
    let Ok((certs, _)) = raw_parts(p7) else {
        return Ok(());
    };
    for c in certs.iter().filter_map(|raw| Cert::parse(raw).ok()) {
        trust.check_revoked(c.tbs, &c.cert, compress)?;
    }
    Ok(())
}

/// Which certificate of `p7` does not decode, if one does not: a SignedData whose
/// certificates are well-formed DER but not X.509 fails as a whole in `cms`; this names it.
fn certificate_error(p7: &[u8]) -> Option<VerifyError> {
    let (certs, _) = raw_parts(p7).ok()?;
    certs.iter().enumerate().find_map(|(index, raw)| {
        Cert::parse(raw)
            .err()
            .map(|error| VerifyError::Certificate { index, error })
    })
}

/// A DER length's octets.
fn der_length(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return alloc::vec![n as u8];
    }
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let mut out = alloc::vec![0x80 | (bytes.len() - skip) as u8];
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// From the signer up through the SignedData's certificates to a trusted certificate:
/// either one of them is trusted as it is (UEFI's `db` allows a leaf), or a trusted one
/// issued it. Every certificate on the way is checked against the revoked ones.
fn chain(
    certs: &[Cert<'_>],
    signer: usize,
    trust: &TrustSet,
    compress: Compress,
) -> Result<Signer, VerifyError> {
    let signer_name = common_name(&certs[signer].cert);
    let found = |anchor: &str| Signer {
        signer: signer_name.clone(),
        anchor: String::from(anchor),
    };
    let mut at = signer;
    for _ in 0..=CHAIN_MAX {
        let c = &certs[at];
        trust.check_revoked(c.tbs, &c.cert, compress)?;
        let anchor = trust.anchors.iter().find(|a| a.der == c.raw).or_else(|| {
            trust
                .anchors
                .iter()
                .find(|a| issued_by(c, &a.cert, compress).is_ok())
        });
        if let Some(a) = anchor {
            // The trusted certificate itself may be revoked (a CA in db and in dbx).
            let tbs = Cert::parse(&a.der).map(|p| p.tbs).unwrap_or(&[]);
            trust.check_revoked(tbs, &a.cert, compress)?;
            return Ok(found(&a.name));
        }
        match certs
            .iter()
            .position(|i| !core::ptr::eq(i, c) && issued_by(c, &i.cert, compress).is_ok())
        {
            Some(next) => at = next,
            None => {
                return Err(VerifyError::Untrusted {
                    signer: signer_name,
                    last: common_name(&c.cert),
                    issuer: issuer_name(&c.cert),
                })
            }
        }
    }
    Err(VerifyError::ChainTooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(der_length(5), [5]);
        assert_eq!(der_length(0x7f), [0x7f]);
        assert_eq!(der_length(0x80), [0x81, 0x80]);
        assert_eq!(der_length(0x1234), [0x82, 0x12, 0x34]);
    }
}
