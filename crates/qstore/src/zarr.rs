//! Zarr v3 arrays on a local file system, the format of the Zarr/TensorStore ecosystem:
//! [`export`] writes a stored state as an array (`zarr.json` at the directory's root, chunks
//! at `c/I` or `c/I/J`, one per qstore chunk, `bytes` then `zstd` codecs, the state's kind,
//! qubit order and tags as attributes, all-zero chunks left out as the fill value), which
//! zarr-python 3 and tensorstore open; [`read_array`] reads an array zarr-python wrote
//! (codecs `bytes` in either byte order, then any of `zstd`, `gzip`, `crc32c`; anything else is
//! refused by name) into little-endian bytes for a put. Written by hand: the subset is small,
//! and the `zarrs` crate would bring a much larger dependency tree for it.

use crate::error::{Error, Result};
use crate::repo::StateReader;
use crate::state::dtype::{DType, StateKind};
use crate::state::input::{ArrayInfo, all_zero};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExportReport {
    pub dir: PathBuf,
    pub shape: Vec<u64>,
    pub chunk_shape: Vec<u64>,
    pub data_type: String,
    pub chunks_written: u64,
    /// All-zero chunks left out (they read as the fill value).
    pub chunks_skipped: u64,
    pub bytes_written: u64,
}

fn zarr_type(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::Complex64 => "complex64",
        DType::Complex128 => "complex128",
        DType::Float32 => "float32",
        DType::Float64 => "float64",
        DType::Int8 => "int8",
        DType::Int16 => "int16",
        DType::Int32 => "int32",
        DType::Int64 => "int64",
        DType::UInt8 => "uint8",
        DType::UInt16 => "uint16",
        DType::UInt32 => "uint32",
        DType::UInt64 => "uint64",
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn invalid(dir: &Path, what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: {what}", dir.display()))
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path.display().to_string(), e)
}

/// The chunk shape of an export: one qstore chunk of elements (a 1-D state), or whole rows
/// adding up to about one qstore chunk (a matrix).
fn chunk_shape(shape: &[u64], chunk_elems: u64) -> Vec<u64> {
    match shape {
        [n] => vec![chunk_elems.min(*n).max(1)],
        [r, c] => vec![(chunk_elems / c.max(&1)).clamp(1, (*r).max(1)), *c],
        _ => shape.to_vec(),
    }
}

/// Write the state `reader` reads (stored at `path` in commit `commit`) to `dir` as a Zarr
/// v3 array. `dir` must not exist or be empty.
pub fn export(
    reader: &mut StateReader,
    path: &str,
    commit: &str,
    dir: &Path,
) -> Result<ExportReport> {
    let e = reader.entry().clone();
    if e.is_wide() {
        return Err(invalid(
            dir,
            format!(
                "{path} is a {}-qubit sparse state without a dense form",
                e.qubits
            ),
        ));
    }
    let dtype = zarr_type(e.dtype)
        .ok_or_else(|| invalid(dir, format!("{} has no Zarr v3 data type", e.dtype.name())))?;
    if e.shape.len() > 2 {
        return Err(invalid(dir, "only 1-D and 2-D states are exported"));
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|x| io(dir, x))?
            .next()
            .is_some()
    {
        return Err(invalid(
            dir,
            "exists and is not empty: export writes a new directory",
        ));
    }
    let item = e.dtype.item_size() as u64;
    let chunk_elems = (reader.manifest().chunk_size / item).max(1);
    let cs = chunk_shape(&e.shape, chunk_elems);
    let grid: Vec<u64> = e
        .shape
        .iter()
        .zip(&cs)
        .map(|(n, c)| n.div_ceil(*c))
        .collect();
    std::fs::create_dir_all(dir.join("c")).map_err(|x| io(dir, x))?;
    let kind = match e.kind {
        StateKind::StateVector => "statevector",
        StateKind::DensityMatrix => "density_matrix",
        StateKind::Array => "array",
    };
    let fill = if e.dtype.is_complex() {
        json!([0.0, 0.0])
    } else {
        json!(0)
    };
    let meta = json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": e.shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": cs}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "zstd", "configuration": {"level": 3, "checksum": false}}
        ],
        "attributes": {
            "qstore": {
                "kind": kind,
                "qubits": e.qubits(),
                "qubit_order": "bit q of a basis index is qubit q (little-endian, as Qiskit)",
                "path": path,
                "commit": commit,
                "encoding": e.encoding.name(),
                "norm": e.norm,
                "tags": e.tags,
            }
        },
    });
    let mut report = ExportReport {
        dir: dir.to_path_buf(),
        shape: e.shape.clone(),
        chunk_shape: cs.clone(),
        data_type: dtype.into(),
        chunks_written: 0,
        chunks_skipped: 0,
        bytes_written: 0,
    };
    let row_len = if e.shape.len() == 2 {
        e.shape[1]
    } else {
        e.shape[0]
    };
    let mut buf = Vec::new();
    // Chunk (i) of a vector, or (i, 0) of a matrix chunked by whole rows.
    for i in 0..grid[0] {
        let (start, stop) = if e.shape.len() == 1 {
            (i * cs[0], ((i + 1) * cs[0]).min(e.shape[0]))
        } else {
            (
                i * cs[0] * row_len,
                ((i + 1) * cs[0]).min(e.shape[0]) * row_len,
            )
        };
        let full = cs.iter().product::<u64>() * item;
        buf.clear();
        buf.resize(full as usize, 0);
        reader.read_elements(start, stop, &mut buf[..((stop - start) * item) as usize])?;
        if all_zero(&buf) {
            report.chunks_skipped += 1;
            continue;
        }
        let z = zstd::bulk::compress(&buf, 3).map_err(|x| io(dir, x))?;
        let key = if e.shape.len() == 1 {
            dir.join("c").join(i.to_string())
        } else {
            let d = dir.join("c").join(i.to_string());
            std::fs::create_dir_all(&d).map_err(|x| io(&d, x))?;
            d.join("0")
        };
        std::fs::write(&key, &z).map_err(|x| io(&key, x))?;
        report.chunks_written += 1;
        report.bytes_written += z.len() as u64;
    }
    let text = serde_json::to_vec_pretty(&meta).map_err(|x| invalid(dir, x))?;
    // zarr.json last: a directory without it is not an array yet.
    let zj = dir.join("zarr.json");
    std::fs::write(&zj, text).map_err(|x| io(&zj, x))?;
    Ok(report)
}

/// A bytes-to-bytes codec of an imported array.
#[derive(Clone, Debug, PartialEq)]
enum Codec {
    Zstd,
    Gzip,
    Crc32c,
}

/// The most bytes an import holds (the array is read whole before it is stored).
pub const MAX_IMPORT_BYTES: u64 = 64 << 30;

/// Read the Zarr v3 array at `dir` (as zarr-python writes it) into little-endian bytes and
/// the array's shape and dtype.
pub fn read_array(dir: &Path) -> Result<(ArrayInfo, Vec<u8>)> {
    let zj = dir.join("zarr.json");
    let text = std::fs::read(&zj).map_err(|x| io(&zj, x))?;
    let bad = |what: String| invalid(&zj, what);
    let v: Value =
        serde_json::from_slice(&text).map_err(|x| bad(format!("not valid JSON: {x}")))?;
    if v["zarr_format"] != 3 {
        return Err(bad(format!(
            "zarr_format is {}, not 3 (only Zarr v3 is read)",
            v["zarr_format"]
        )));
    }
    if v["node_type"] != "array" {
        return Err(bad(format!(
            "node_type is {}, not \"array\"",
            v["node_type"]
        )));
    }
    let shape: Vec<u64> = v["shape"]
        .as_array()
        .ok_or_else(|| bad("shape is missing".into()))?
        .iter()
        .map(|x| {
            x.as_u64()
                .ok_or_else(|| bad(format!("shape entry {x} is not a size")))
        })
        .collect::<Result<_>>()?;
    if shape.is_empty() || shape.len() > 2 {
        return Err(bad(format!(
            "shape {shape:?}: 1-D and 2-D arrays are imported"
        )));
    }
    let dt = v["data_type"]
        .as_str()
        .ok_or_else(|| bad("data_type is missing".into()))?;
    let dtype = DType::from_name(dt)
        .filter(|d| zarr_type(*d).is_some())
        .ok_or_else(|| bad(format!("data_type {dt:?} is not supported")))?;
    if v["chunk_grid"]["name"] != "regular" {
        return Err(bad(format!(
            "chunk_grid {} is not supported (regular only)",
            v["chunk_grid"]["name"]
        )));
    }
    let cs: Vec<u64> = v["chunk_grid"]["configuration"]["chunk_shape"]
        .as_array()
        .ok_or_else(|| bad("chunk_shape is missing".into()))?
        .iter()
        .map(|x| {
            x.as_u64()
                .filter(|c| *c > 0)
                .ok_or_else(|| bad(format!("chunk size {x}")))
        })
        .collect::<Result<_>>()?;
    if cs.len() != shape.len() {
        return Err(bad("chunk_shape and shape differ in rank".into()));
    }
    let (sep, v2_keys) = match v["chunk_key_encoding"]["name"].as_str() {
        Some("default") => (
            v["chunk_key_encoding"]["configuration"]["separator"]
                .as_str()
                .unwrap_or("/")
                .to_string(),
            false,
        ),
        Some("v2") => (
            v["chunk_key_encoding"]["configuration"]["separator"]
                .as_str()
                .unwrap_or(".")
                .to_string(),
            true,
        ),
        other => {
            return Err(bad(format!(
                "chunk_key_encoding {other:?} is not supported"
            )));
        }
    };
    if sep != "/" && sep != "." {
        return Err(bad(format!("chunk key separator {sep:?}")));
    }
    let codecs = v["codecs"]
        .as_array()
        .ok_or_else(|| bad("codecs are missing".into()))?;
    let mut big_endian = false;
    let mut chain = Vec::new();
    for (k, c) in codecs.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or("");
        match (k, name) {
            (0, "bytes") => {
                big_endian = c["configuration"]["endian"] == "big";
            }
            (0, other) => {
                return Err(bad(format!(
                    "the first codec is {other:?}: only \"bytes\" is read (no transpose, no sharding)"
                )));
            }
            (_, "zstd") => chain.push(Codec::Zstd),
            (_, "gzip") => chain.push(Codec::Gzip),
            (_, "crc32c") => chain.push(Codec::Crc32c),
            (_, other) => {
                return Err(bad(format!(
                    "codec {other:?} is not supported (bytes, zstd, gzip, crc32c are)"
                )));
            }
        }
    }
    let item = dtype.item_size() as u64;
    let n: u64 = shape.iter().product();
    let total = n
        .checked_mul(item)
        .filter(|t| *t <= MAX_IMPORT_BYTES)
        .ok_or_else(|| {
            bad(format!(
                "{n} elements of {dt} are more than an import holds"
            ))
        })?;
    let fill = fill_bytes(&v["fill_value"], dtype)
        .ok_or_else(|| bad(format!("fill_value {} does not fit {dt}", v["fill_value"])))?;
    let mut out = vec![0u8; total as usize];
    if fill.iter().any(|b| *b != 0) {
        for e in out.chunks_exact_mut(item as usize) {
            e.copy_from_slice(&fill);
        }
    }
    let grid: Vec<u64> = shape.iter().zip(&cs).map(|(s, c)| s.div_ceil(*c)).collect();
    if grid
        .iter()
        .try_fold(1u64, |a, g| a.checked_mul(*g))
        .is_none_or(|g| g > 1 << 26)
    {
        return Err(bad(format!(
            "chunk_shape {cs:?} makes more than 2^26 chunks"
        )));
    }
    let chunk_bytes = cs.iter().product::<u64>() * item;
    let cols = if shape.len() == 2 { grid[1] } else { 1 };
    for ci in 0..grid[0] {
        for cj in 0..cols {
            let idx: Vec<String> = if shape.len() == 2 {
                vec![ci.to_string(), cj.to_string()]
            } else {
                vec![ci.to_string()]
            };
            let key = if v2_keys {
                dir.join(idx.join(&sep))
            } else {
                dir.join(format!("c{sep}{}", idx.join(&sep)))
            };
            let raw = match std::fs::read(&key) {
                Ok(b) => b,
                Err(x) if x.kind() == std::io::ErrorKind::NotFound => continue,
                Err(x) => return Err(io(&key, x)),
            };
            let mut data = raw;
            for c in chain.iter().rev() {
                data = decode(c, &data).map_err(|m| invalid(&key, m))?;
            }
            if data.len() as u64 != chunk_bytes {
                return Err(invalid(
                    &key,
                    format!(
                        "the chunk decodes to {} bytes, not the {chunk_bytes} of a {cs:?} chunk of {dt} (truncated?)",
                        data.len()
                    ),
                ));
            }
            if big_endian {
                let w = if dtype.is_complex() { item / 2 } else { item } as usize;
                data.chunks_exact_mut(w).for_each(|x| x.reverse());
            }
            // Copy the chunk's part inside the array.
            if shape.len() == 1 {
                let start = ci * cs[0];
                let stop = ((ci + 1) * cs[0]).min(shape[0]);
                let len = ((stop - start) * item) as usize;
                out[(start * item) as usize..(start * item) as usize + len]
                    .copy_from_slice(&data[..len]);
            } else {
                let (r0, c0) = (ci * cs[0], cj * cs[1]);
                let rows = cs[0].min(shape[0] - r0);
                let width = cs[1].min(shape[1] - c0);
                for r in 0..rows {
                    let src = (r * cs[1] * item) as usize;
                    let dst = (((r0 + r) * shape[1] + c0) * item) as usize;
                    let len = (width * item) as usize;
                    out[dst..dst + len].copy_from_slice(&data[src..src + len]);
                }
            }
        }
    }
    Ok((ArrayInfo { dtype, shape }, out))
}

fn decode(c: &Codec, data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    match c {
        Codec::Zstd => zstd::stream::decode_all(data).map_err(|e| format!("zstd: {e}")),
        Codec::Gzip => {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            Ok(out)
        }
        Codec::Crc32c => {
            if data.len() < 4 {
                return Err("shorter than its crc32c checksum".into());
            }
            let (body, sum) = data.split_at(data.len() - 4);
            let want = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
            let got = crc32c::crc32c(body);
            if got != want {
                return Err(format!(
                    "crc32c mismatch: stored {want:08x}, computed {got:08x}"
                ));
            }
            Ok(body.to_vec())
        }
    }
}

/// The fill value as the little-endian bytes of one element.
fn fill_bytes(v: &Value, d: DType) -> Option<Vec<u8>> {
    let num = |x: &Value| -> Option<f64> {
        match x {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                _ => None,
            },
            _ => None,
        }
    };
    Some(match d {
        DType::Complex128 => {
            let a = v.as_array()?;
            [
                num(a.first()?)?.to_le_bytes(),
                num(a.get(1)?)?.to_le_bytes(),
            ]
            .concat()
        }
        DType::Complex64 => {
            let a = v.as_array()?;
            [
                (num(a.first()?)? as f32).to_le_bytes(),
                (num(a.get(1)?)? as f32).to_le_bytes(),
            ]
            .concat()
        }
        DType::Float64 => num(v)?.to_le_bytes().to_vec(),
        DType::Float32 => (num(v)? as f32).to_le_bytes().to_vec(),
        _ => {
            let i = v.as_i64().or_else(|| v.as_u64().map(|u| u as i64))?;
            i.to_le_bytes()[..d.item_size()].to_vec()
        }
    })
}
