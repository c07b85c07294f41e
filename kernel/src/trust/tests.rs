//! The verifier against files `scripts/trust-testdata.sh` signed with `sbsign`, and each bad
//! input of the issue's list made from them.

use super::*;
use signed_data::Signer;

const TINY: &[u8] = include_bytes!("testdata/tiny.efi");
const SIGNED: &[u8] = include_bytes!("testdata/tiny.signed.efi");
const BY_OTHER: &[u8] = include_bytes!("testdata/tiny.other.efi");
const DEEP: &[u8] = include_bytes!("testdata/tiny.deep.efi");
const UNDER_A_LEAF: &[u8] = include_bytes!("testdata/tiny.sub.efi");
const ROOT: &[u8] = include_bytes!("testdata/root.der");
const OTHER: &[u8] = include_bytes!("testdata/other.der");
const SIGNER: &[u8] = include_bytes!("testdata/signer.der");
const INTERMEDIATE_PEM: &[u8] = include_bytes!("testdata/int.pem");

fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    sha2::block_api::compress256(state, blocks);
}

fn trusting(certs: &[&[u8]]) -> TrustSet {
    let mut t = TrustSet::default();
    for c in certs {
        for a in Anchor::parse_file(c).unwrap() {
            t.add_anchor(a);
        }
    }
    t
}

fn verify(image: &[u8], trust: &TrustSet) -> Result<Verified, VerifyError> {
    verify_image(image, trust, compress)
}

/// Where `needle` first (or last) occurs in `hay`.
fn find(hay: &[u8], needle: &[u8], last: bool) -> usize {
    let mut at = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle);
    let hit = if last { at.next_back() } else { at.next() };
    hit.expect("the bytes occur").0
}

/// The PKCS#7's offset in a signed file (after the one WIN_CERTIFICATE header).
fn pkcs7_at(image: &[u8]) -> usize {
    let secdir = 0x40 + 4 + 20 + 112 + 8 * 4;
    u32::from_le_bytes(image[secdir..secdir + 4].try_into().unwrap()) as usize + 8
}

#[test]
fn a_chain_to_a_trusted_root_verifies() {
    let v = verify(SIGNED, &trusting(&[ROOT])).unwrap();
    assert_eq!(
        v.signer,
        Some(Signer {
            signer: "Hobby Test Signer".into(),
            anchor: "Hobby Test Root".into()
        })
    );
    // The digest leaves the signature out: the unsigned file has the same one.
    let unsigned = Pe::parse(TINY).unwrap().authenticode_sha256(compress);
    assert_eq!(v.digest, unsigned);
    // Any certificate of the chain may be the trusted one, as in UEFI's db.
    for anchor in [INTERMEDIATE_PEM, SIGNER] {
        assert!(verify(SIGNED, &trusting(&[anchor])).is_ok());
    }
}

#[test]
fn unsigned_untrusted_and_too_long_chains_are_refused() {
    let root = trusting(&[ROOT]);
    assert_eq!(verify(TINY, &root), Err(VerifyError::Unsigned));
    assert_eq!(
        verify(BY_OTHER, &root),
        Err(VerifyError::Untrusted {
            signer: "Hobby Test Other".into(),
            last: "Hobby Test Other".into(),
            issuer: "Hobby Test Other".into()
        })
    );
    assert!(verify(BY_OTHER, &trusting(&[OTHER])).is_ok());
    // Signed by a certificate ten intermediates below the root.
    assert_eq!(verify(DEEP, &root), Err(VerifyError::ChainTooLong));
    assert_eq!(
        verify(SIGNED, &TrustSet::default()),
        Err(VerifyError::NoTrust)
    );
    let e = verify(SIGNED, &trusting(&[OTHER])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "signed by 'Hobby Test Signer', whose chain ends at 'Hobby Test Intermediate' (issued by 'Hobby Test Root'), which no trusted certificate is or issued"
    );
}

#[test]
fn a_changed_byte_is_found() {
    let root = trusting(&[ROOT]);
    for at in [0x210, 0x5ff, 0x80] {
        let mut bad = SIGNED.to_vec();
        bad[at] ^= 1;
        assert!(
            matches!(verify(&bad, &root), Err(VerifyError::ImageDigest { .. })),
            "byte {at:#x}"
        );
    }
    // The checksum is not hashed.
    let mut bad = SIGNED.to_vec();
    bad[0x40 + 24 + 64] ^= 1;
    assert!(verify(&bad, &root).is_ok());
}

#[test]
fn bad_pe_headers_are_named() {
    let root = trusting(&[ROOT]);
    let secdir = 0x40 + 4 + 20 + 112 + 8 * 4;
    let mut outside = SIGNED.to_vec();
    outside[secdir + 4..secdir + 8].copy_from_slice(&0x10_0000u32.to_le_bytes());
    assert!(matches!(
        verify(&outside, &root),
        Err(VerifyError::Pe(PeError::CertificateTable {
            size: 0x10_0000,
            ..
        }))
    ));
    let mut length = SIGNED.to_vec();
    let at = pkcs7_at(SIGNED) - 8;
    length[at..at + 4].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        verify(&length, &root),
        Err(VerifyError::Pe(PeError::WinCertificate { length: 4, .. }))
    ));
    let mut section = SIGNED.to_vec();
    let raw_data = 0x40 + 4 + 20 + 240 + 20;
    section[raw_data..raw_data + 4].copy_from_slice(&0x100u32.to_le_bytes());
    assert!(matches!(
        verify(&section, &root),
        Err(VerifyError::Pe(PeError::Section { index: 0, .. }))
    ));
    assert_eq!(
        verify(&SIGNED[..0x30], &root),
        Err(VerifyError::Pe(PeError::Truncated("MS-DOS header")))
    );
    assert_eq!(
        verify(b"\x1f\x8b gzip", &root),
        Err(VerifyError::Pe(PeError::NotPe))
    );
    // Every cut of the file fails with an error (no panic).
    for n in 0..SIGNED.len() {
        let _ = verify(&SIGNED[..n], &root);
    }
}

#[test]
fn bad_pkcs7_is_named() {
    let root = trusting(&[ROOT]);
    let p7 = pkcs7_at(SIGNED);
    let mut garbage = SIGNED.to_vec();
    garbage[p7..p7 + 16].fill(0x5a);
    assert!(matches!(
        verify(&garbage, &root),
        Err(VerifyError::Pkcs7(_))
    ));

    // SHA-384 where SHA-256 was: the content's DigestInfo names it first.
    const SHA256_OID: &[u8] = &[
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let mut sha384 = SIGNED.to_vec();
    while let Some(at) = sha384.windows(11).position(|w| w == SHA256_OID) {
        sha384[at + 10] = 0x02;
    }
    let e = verify(&sha384, &root).unwrap_err();
    assert_eq!(
        e.to_string(),
        "digest algorithm 2.16.840.1.101.3.4.2.2 is not SHA-256"
    );

    // The SignerInfo's rsaEncryption (the last one in the file) made RSA-PSS.
    const RSA_OID: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let mut pss = SIGNED.to_vec();
    let at = find(&pss, RSA_OID, true);
    pss[at + 10] = 0x0a;
    assert_eq!(
        verify(&pss, &root).unwrap_err().to_string(),
        "signature algorithm 1.2.840.113549.1.1.10 is not RSA PKCS#1 v1.5 with SHA-256"
    );

    // The first certificate's key algorithm an OCTET STRING: still DER, not X.509.
    let mut cert = SIGNED.to_vec();
    let at = find(&cert, RSA_OID, false);
    cert[at] = 0x04;
    assert!(matches!(
        verify(&cert, &root),
        Err(VerifyError::Certificate { index: 0, .. })
    ));

    // The signature's last byte changed: made over other bytes.
    let mut sig = SIGNED.to_vec();
    let end = SIGNED.len() - 1;
    let last = (p7..=end).rev().find(|&i| SIGNED[i] != 0).unwrap();
    sig[last] ^= 1;
    assert_eq!(
        verify(&sig, &root),
        Err(VerifyError::BadSignature("Hobby Test Signer".into()))
    );

    // Every byte of the PKCS#7 flipped in turn: an error or (where DER does not care) a
    // verified image, never a panic.
    for at in p7..SIGNED.len() {
        let mut b = SIGNED.to_vec();
        b[at] ^= 0x80;
        let _ = verify(&b, &root);
    }
}

#[test]
fn revoked_hashes_and_certificates() {
    let mut t = trusting(&[ROOT]);
    let digest = verify(SIGNED, &t).unwrap().digest;
    let mut dbx = TrustSet::default();
    dbx.revoked_images.push(digest);
    t.add_dbx(&dbx.dbx_lists(), compress).unwrap();
    assert_eq!(verify(SIGNED, &t), Err(VerifyError::RevokedImage(digest)));

    let mut t = trusting(&[ROOT]);
    let mut dbx = TrustSet::default();
    let intermediate = Anchor::parse_file(INTERMEDIATE_PEM).unwrap().remove(0);
    assert!(dbx.revoke_certificate(&intermediate.der, compress));
    assert_eq!(t.add_dbx(&dbx.dbx_lists(), compress).unwrap(), 1);
    assert_eq!(
        verify(SIGNED, &t),
        Err(VerifyError::RevokedCertificate(
            "Hobby Test Intermediate".into()
        ))
    );

    let mut t = trusting(&[ROOT]);
    let signer = signed_data::Cert::parse(SIGNER).unwrap();
    t.revoked_tbs.push(Sha256::digest(compress, signer.tbs));
    let mut again = trusting(&[ROOT]);
    again.add_dbx(&t.dbx_lists(), compress).unwrap();
    assert_eq!(
        verify(SIGNED, &again),
        Err(VerifyError::RevokedCertificate("Hobby Test Signer".into()))
    );
}

#[test]
fn the_trust_set_travels_as_signature_lists() {
    let mut t = trusting(&[ROOT, OTHER]);
    t.allowed_images
        .push(Pe::parse(TINY).unwrap().authenticode_sha256(compress));
    let mut next = TrustSet::default();
    assert_eq!(next.add_db(&t.db_lists()).unwrap(), 3);
    assert_eq!(next.anchors.len(), 2);
    assert!(verify(SIGNED, &next).is_ok());
    // db naming the unsigned image's hash lets it run, with no signer.
    assert_eq!(verify(TINY, &next).unwrap().signer, None);
    // ... unless its signer is revoked (as in EDK2).
    let mut revoked = next.clone();
    assert!(revoked.revoke_certificate(SIGNER, compress));
    assert_eq!(
        verify(SIGNED, &revoked),
        Err(VerifyError::RevokedCertificate("Hobby Test Signer".into()))
    );
    // The same certificate twice counts once.
    assert_eq!(next.add_db(&t.db_lists()).unwrap(), 1);
    let mut bad = t.db_lists();
    bad[16] = 0xff;
    assert!(matches!(next.add_db(&bad), Err(DbError::List(_))));
}

#[test]
fn certificate_files() {
    assert_eq!(Anchor::parse_file(ROOT).unwrap()[0].name, "Hobby Test Root");
    let pem = Anchor::parse_file(INTERMEDIATE_PEM).unwrap();
    assert_eq!(pem.len(), 1);
    assert_eq!(pem[0].name, "Hobby Test Intermediate");
    let two = [INTERMEDIATE_PEM, INTERMEDIATE_PEM].concat();
    assert_eq!(Anchor::parse_file(&two).unwrap().len(), 2);
    assert_eq!(
        Anchor::parse_file(b"hello").unwrap_err(),
        AnchorError::NotACertificate
    );
    let cut = &INTERMEDIATE_PEM[..INTERMEDIATE_PEM.len() - 10];
    assert_eq!(Anchor::parse_file(cut).unwrap_err(), AnchorError::Pem(0));
    assert!(matches!(
        Anchor::parse_file(&ROOT[..100]),
        Err(AnchorError::Der { block: 0, .. })
    ));
}

#[test]
fn policies() {
    for p in [Policy::Off, Policy::Warn, Policy::Enforce] {
        assert_eq!(Policy::parse(p.name()), Some(p));
    }
    assert_eq!(Policy::parse("on"), None);
    assert!(Policy::Enforce > Policy::Warn && Policy::Warn > Policy::Off);
}

#[test]
fn a_certificate_that_is_no_ca_issues_nothing() {
    // Signed by "Sub Signer", issued by "Signer" (CA:FALSE), issued by the intermediate.
    let e = verify(UNDER_A_LEAF, &trusting(&[ROOT])).unwrap_err();
    assert_eq!(
        e,
        VerifyError::Untrusted {
            signer: "Hobby Test Sub Signer".into(),
            last: "Hobby Test Sub Signer".into(),
            issuer: "Hobby Test Signer".into()
        }
    );
    // Trusting the leaf itself does not make it a CA either.
    assert!(verify(UNDER_A_LEAF, &trusting(&[SIGNER])).is_err());
    assert!(signed_data::is_ca(&Anchor::from_der(ROOT).unwrap().cert));
    assert!(!signed_data::is_ca(&Anchor::from_der(SIGNER).unwrap().cert));
}

#[test]
fn a_revoked_trusted_certificate_vouches_for_nothing() {
    for by_tbs in [false, true] {
        let mut t = trusting(&[ROOT]);
        let root = signed_data::Cert::parse(ROOT).unwrap();
        let mut dbx = TrustSet::default();
        if by_tbs {
            dbx.revoked_tbs.push(Sha256::digest(compress, root.tbs));
        } else {
            assert!(dbx.revoke_certificate(ROOT, compress));
        }
        t.add_dbx(&dbx.dbx_lists(), compress).unwrap();
        assert_eq!(
            verify(SIGNED, &t),
            Err(VerifyError::RevokedCertificate("Hobby Test Root".into())),
            "by TBS: {by_tbs}"
        );
        assert_eq!(t.drop_revoked_anchors(compress), ["Hobby Test Root"]);
        assert!(t.anchors.is_empty());
    }
    // A certificate revoked as DER is also revoked in another encoding of the same TBS.
    let mut t = TrustSet::default();
    let mut dbx = TrustSet::default();
    assert!(dbx.revoke_certificate(ROOT, compress));
    t.add_dbx(&dbx.dbx_lists(), compress).unwrap();
    assert_eq!(t.revoked_tbs.len(), 1);
    // The same lists again add nothing.
    assert_eq!(t.add_dbx(&dbx.dbx_lists(), compress).unwrap(), 0);
}

#[test]
fn padding_gaps_and_what_is_loaded() {
    let root = trusting(&[ROOT]);
    // A WIN_CERTIFICATE length that counts the padding to 8 bytes (as signtool writes it).
    let at = pkcs7_at(SIGNED) - 8;
    let table = SIGNED.len() - at;
    let mut padded = SIGNED.to_vec();
    padded[at..at + 4].copy_from_slice(&(table as u32).to_le_bytes());
    let v = verify(&padded, &root).unwrap();
    assert_eq!(v.signed_len, TINY.len(), "the table is not loaded");
    // A section starting past the headers' end leaves a gap no signature covers.
    let mut gap = SIGNED.to_vec();
    let raw_data = 0x40 + 4 + 20 + 240 + 20;
    gap[raw_data..raw_data + 4].copy_from_slice(&0x208u32.to_le_bytes());
    gap[raw_data - 4..raw_data].copy_from_slice(&0x1f8u32.to_le_bytes());
    assert!(matches!(
        verify(&gap, &root),
        Err(VerifyError::Pe(PeError::Gap {
            start: 0x200,
            end: 0x208
        }))
    ));
}
