//! The legacy Docker volume plugin protocol: JSON bodies of `POST /Plugin.Activate` and
//! `POST /VolumeDriver.*`, field names exactly as Docker sends and expects them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `{"Name": "v"}` (Remove, Path, Get).
#[derive(Debug, Deserialize)]
pub struct NameRequest {
    #[serde(rename = "Name")]
    pub name: String,
}

/// `{"Name": "v", "Opts": {...}}` (Create).
#[derive(Debug, Deserialize)]
pub struct CreateRequest {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Opts", default)]
    pub opts: Option<BTreeMap<String, String>>,
}

/// `{"Name": "v", "ID": "..."}` (Mount, Unmount).
#[derive(Debug, Deserialize)]
pub struct MountRequest {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// `{"Err": ""}`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrResponse {
    #[serde(rename = "Err")]
    pub err: String,
}

/// `{"Mountpoint": "/abs", "Err": ""}` (Mount, Path).
#[derive(Debug, Serialize, Deserialize)]
pub struct MountResponse {
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    #[serde(rename = "Err")]
    pub err: String,
}

/// One volume as Get and List describe it.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct VolumeInfo {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    #[serde(
        rename = "CreatedAt",
        skip_serializing_if = "String::is_empty",
        default
    )]
    pub created_at: String,
    #[serde(rename = "Status", skip_serializing_if = "BTreeMap::is_empty", default)]
    pub status: BTreeMap<String, serde_json::Value>,
}

/// `{"Volume": {...}, "Err": ""}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GetResponse {
    #[serde(rename = "Volume", skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeInfo>,
    #[serde(rename = "Err")]
    pub err: String,
}

/// `{"Volumes": [...], "Err": ""}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListResponse {
    #[serde(rename = "Volumes")]
    pub volumes: Vec<VolumeInfo>,
    #[serde(rename = "Err")]
    pub err: String,
}
