//! Zarr v3 export and import (`qstore::zarr`): a state exported and read back is bit-exact
//! (vectors with all-zero chunks left out, matrices, complex64), malformed metadata and
//! damaged chunks are refused naming the file, and the reader never panics on arbitrary
//! metadata or chunk bytes.

mod common;

use common::{memory_repo, put_one, sv_info};
use proptest::prelude::*;
use qstore::{ArrayInfo, DType, PutOptions, zarr};
use std::path::Path;

fn state(n: usize, seed: u64) -> Vec<u8> {
    common::noise_c128(n, seed)
}

fn export(repo: &qstore::Repository, path: &str, dir: &Path) -> zarr::ExportReport {
    let (c, _) = repo.state("main", path).unwrap();
    let mut r = repo.reader("main", path).unwrap();
    zarr::export(&mut r, path, &c.to_hex(), dir).unwrap()
}

#[test]
fn export_then_read_is_bit_exact() {
    let repo = memory_repo(4096);
    let dir = tempfile::tempdir().unwrap();
    // A vector with a zero stretch: those chunks are left out and read back as zeros.
    let mut v = state(4096, 1);
    v[16 * 1000..16 * 3000].fill(0);
    let opts = PutOptions {
        encoding: qstore::EncodingChoice::Dense,
        ..Default::default()
    };
    put_one(&repo, "sv", &sv_info(12), &v, &opts).unwrap();
    let rep = export(&repo, "sv", &dir.path().join("sv"));
    assert_eq!(rep.chunk_shape, vec![256]);
    assert!(rep.chunks_skipped >= 6, "{rep:?}");
    let (info, back) = zarr::read_array(&dir.path().join("sv")).unwrap();
    assert_eq!(
        (info.dtype, info.shape.clone()),
        (DType::Complex128, vec![4096])
    );
    assert_eq!(back, v);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sv/zarr.json")).unwrap()).unwrap();
    assert_eq!(meta["attributes"]["qstore"]["kind"], "statevector");
    assert_eq!(meta["codecs"][1]["name"], "zstd");
    // A density matrix (rows per chunk) and a complex64 vector of an odd length.
    let m = state(64 * 64, 2);
    let dm = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![64, 64],
    };
    put_one(
        &repo,
        "dm",
        &dm,
        &m,
        &PutOptions {
            kind: qstore::KindRequest::Array,
            ..Default::default()
        },
    )
    .unwrap();
    export(&repo, "dm", &dir.path().join("dm"));
    let (info, back) = zarr::read_array(&dir.path().join("dm")).unwrap();
    assert_eq!(info.shape, vec![64, 64]);
    assert_eq!(back, m);
    let c64: Vec<u8> = state(1000, 3)
        .chunks(8)
        .flat_map(|b| (f64::from_le_bytes(b.try_into().unwrap()) as f32).to_le_bytes())
        .collect();
    let info = ArrayInfo {
        dtype: DType::Complex64,
        shape: vec![1000],
    };
    put_one(
        &repo,
        "c64",
        &info,
        &c64,
        &PutOptions {
            kind: qstore::KindRequest::Array,
            ..Default::default()
        },
    )
    .unwrap();
    export(&repo, "c64", &dir.path().join("c64"));
    assert_eq!(zarr::read_array(&dir.path().join("c64")).unwrap().1, c64);
    // Export refuses a directory that holds something.
    let (c, _) = repo.state("main", "sv").unwrap();
    let mut r = repo.reader("main", "sv").unwrap();
    let e = zarr::export(&mut r, "sv", &c.to_hex(), &dir.path().join("sv")).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
}

fn write_meta(dir: &Path, meta: &str) {
    std::fs::create_dir_all(dir.join("c")).unwrap();
    std::fs::write(dir.join("zarr.json"), meta).unwrap();
}

const META: &str = r#"{"zarr_format":3,"node_type":"array","shape":[8],"data_type":"complex128",
"chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4]}},
"chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},
"fill_value":[0.0,0.0],"codecs":[{"name":"bytes","configuration":{"endian":"little"}},
{"name":"crc32c"}],"attributes":{}}"#;

#[test]
fn malformed_metadata_and_damaged_chunks_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (meta, needle) in [
        ("{not json", "not valid JSON"),
        (
            &META.replace("\"zarr_format\":3", "\"zarr_format\":2") as &str,
            "not 3",
        ),
        (&META.replace("complex128", "complex256"), "data_type"),
        (
            &META.replace("\"crc32c\"", "\"blosc\""),
            "codec \"blosc\" is not supported",
        ),
        (
            &META.replace("\"name\":\"bytes\"", "\"name\":\"transpose\""),
            "only \"bytes\"",
        ),
        (
            &META.replace("[8]", "[2,2,2]").replace("[4]", "[1,1,1]"),
            "1-D and 2-D",
        ),
        (
            &META.replace("\"node_type\":\"array\"", "\"node_type\":\"group\""),
            "node_type",
        ),
        (
            &META.replace("[8]", "[99999999999999]"),
            "more than an import holds",
        ),
    ] {
        let d = dir.path().join("bad");
        let _ = std::fs::remove_dir_all(&d);
        write_meta(&d, meta);
        let e = zarr::read_array(&d).unwrap_err().to_string();
        assert!(e.contains(needle), "{meta}: {e}");
        assert!(e.contains("zarr.json"), "{e}");
    }
    // A chunk with a bad checksum, and a truncated one.
    let d = dir.path().join("chunks");
    write_meta(&d, META);
    let body = state(4, 9);
    let mut good = body.clone();
    good.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    std::fs::write(d.join("c/0"), &good).unwrap();
    let mut bad = good.clone();
    bad[3] ^= 1;
    std::fs::write(d.join("c/1"), &bad).unwrap();
    let e = zarr::read_array(&d).unwrap_err().to_string();
    assert!(e.contains("c/1") && e.contains("crc32c mismatch"), "{e}");
    let mut short = body[..40].to_vec();
    short.extend_from_slice(&crc32c::crc32c(&body[..40]).to_le_bytes());
    std::fs::write(d.join("c/1"), &short).unwrap();
    let e = zarr::read_array(&d).unwrap_err().to_string();
    assert!(e.contains("c/1") && e.contains("truncated"), "{e}");
    // Only the first chunk: the rest is the fill value.
    std::fs::remove_file(d.join("c/1")).unwrap();
    let (_, back) = zarr::read_array(&d).unwrap();
    assert_eq!(&back[..64], &body[..]);
    assert!(back[64..].iter().all(|b| *b == 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_metadata_never_panics(meta in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("zarr.json"), &meta).unwrap();
        let _ = zarr::read_array(dir.path());
    }

    #[test]
    fn arbitrary_chunks_never_panic(
        a in proptest::collection::vec(any::<u8>(), 0..200),
        b in proptest::collection::vec(any::<u8>(), 0..200),
        codec in 0usize..4,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let name = ["crc32c", "zstd", "gzip", "crc32c\"},{\"name\":\"zstd"][codec];
        write_meta(dir.path(), &META.replace("\"crc32c\"", &format!("\"{name}\"")));
        std::fs::write(dir.path().join("c/0"), &a).unwrap();
        std::fs::write(dir.path().join("c/1"), &b).unwrap();
        let _ = zarr::read_array(dir.path());
    }
}
