"""Why the box refuses a data folder, and what to do about it: the messages of :mod:`edge.store.datadir`, in
Simplified Chinese and English. Each function returns the :class:`~edge.errors.DataFolderError` to raise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import DataFolderError
from vault.keys import KEY_ENV, KEY_FILE, DataKey

if TYPE_CHECKING:
    from edge.store.datadir import FolderParts

_ROTATE = "smartbranch keys rotate"


def db_missing(data_dir: Path, parts: FolderParts, clips_dir: Path) -> DataFolderError:
    present_en, present_zh = [], []
    if parts.gallery_files:
        present_en.append(f"gallery files ({data_dir / 'gallery'}: {', '.join(parts.gallery_files)})")
        present_zh.append(f"人脸库文件（{data_dir / 'gallery'}：{', '.join(parts.gallery_files)}）")
    if parts.clips:
        present_en.append(f"clips ({clips_dir})")
        present_zh.append(f"服务录像（{clips_dir}）")
    if parts.db_companions:
        present_en.append(" and ".join(parts.db_companions))
        present_zh.append("、".join(parts.db_companions))
    if parts.key_file:
        present_en.append(f"the key file {KEY_FILE}")
        present_zh.append(f"密钥文件 {KEY_FILE}")
    db = data_dir / "edge.db"
    return DataFolderError(
        "db_missing",
        en=(f"The database {db} is missing, but the data folder still holds {'; '.join(present_en)}. Starting "
            "would create an empty database and overwrite the gallery with an empty one, so the box refuses to "
            f"start; nothing was changed. To recover: restore edge.db (with edge.db-wal if it had one) from a "
            f"backup into {data_dir}. To start afresh on purpose: move the whole folder {data_dir} away (keep "
            "it until you are sure), then start again."),
        zh=(f"数据库 {db} 不存在，但数据目录中仍有：{'；'.join(present_zh)}。继续启动会新建空数据库，并用空人脸库"
            f"覆盖现有人脸库，因此拒绝启动，未做任何修改。恢复方法：从备份把 edge.db（如有 edge.db-wal 一并）恢复到 "
            f"{data_dir}。若确实要从头开始：先把整个目录 {data_dir} 移走（确认无误前请保留），再启动。"))


def key_missing(data_dir: Path, stored_id: str | None) -> DataFolderError:
    which_en = f" (key id {stored_id})" if stored_id else ""
    which_zh = f"（密钥编号 {stored_id}）" if stored_id else ""
    key_file = data_dir / KEY_FILE
    return DataFolderError(
        "key_missing",
        en=(f"The data in {data_dir} is encrypted{which_en}, but no key is configured: ${KEY_ENV} is not set "
            f"and {key_file} does not exist. A new key is made only for an empty data folder (with a new key the "
            "stored photos could not be read), so the box refuses to start; nothing was changed. Set "
            f"${KEY_ENV} to the key this data was encrypted with, or put that key back into {key_file} "
            f"(mode 0600). If the key is lost, the stored photos are lost too: to start afresh, move {data_dir} "
            "away and enrol again."),
        zh=(f"数据目录 {data_dir} 中的数据已加密{which_zh}，但未配置密钥：环境变量 ${KEY_ENV} 未设置，{key_file} "
            "也不存在。只有空的数据目录才会新建密钥（用新密钥将无法读取已存照片），因此拒绝启动，未做任何修改。请把 "
            f"${KEY_ENV} 设为加密这些数据时所用的密钥，或把该密钥放回 {key_file}（权限 0600）。若密钥已丢失，已存"
            f"照片也无法恢复：如需从头开始，请把 {data_dir} 移走后重新登记。"))


def key_mismatch(data_dir: Path, configured: DataKey, stored_id: str | None, right_file: str | None,
                 previous_id: str | None = None) -> DataFolderError:
    expected_en = f"key id {stored_id}" if stored_id else "the stored photos do not decrypt with it"
    expected_zh = f"应为密钥编号 {stored_id}" if stored_id else "已存照片无法用它解密"
    hint_en = hint_zh = ""
    if right_file:
        hint_en = f" The key file {right_file} holds the right key: unset ${KEY_ENV} to use it."
        hint_zh = f"密钥文件 {right_file} 中是正确的密钥：取消设置 ${KEY_ENV} 即可使用它。"
    if previous_id is not None and previous_id == configured.key_id:
        hint_en += (" This is the key from before the last key rotation: use the new key (the one in "
                    f"{KEY_FILE}, or given to {_ROTATE} with --new-key-file).")
        hint_zh += (f"这是上次密钥轮换之前的旧密钥：请改用新密钥（{KEY_FILE} 中的，"
                    f"或 {_ROTATE} 的 --new-key-file 所给的）。")
    return DataFolderError(
        "key_mismatch",
        en=(f"The key from {configured.source} (key id {configured.key_id}) is not the key the data in "
            f"{data_dir} was encrypted with ({expected_en}). The box refuses to start; nothing was changed."
            f"{hint_en} Set ${KEY_ENV} (or {KEY_FILE}) to the right key. To change the key on purpose, use "
            f"{_ROTATE} while the old key is still configured."),
        zh=(f"来自 {configured.source} 的密钥（编号 {configured.key_id}）不是加密 {data_dir} 中数据时所用的密钥"
            f"（{expected_zh}）。已拒绝启动，未做任何修改。{hint_zh}请把 ${KEY_ENV}（或 {KEY_FILE}）设为正确的"
            f"密钥。如需更换密钥，请在仍配置旧密钥时使用 {_ROTATE}。"))


def blob_undecryptable(data_dir: Path, label: str) -> DataFolderError:
    return DataFolderError(
        "data_undecryptable",
        en=(f"The configured key is the one recorded for {data_dir}, but stored data ({label}) does not "
            "decrypt with it: part of the data was written under another key, or was damaged. The box refuses "
            "to start; nothing was changed. Restore edge.db from a backup, or set the key it was written with."),
        zh=(f"已配置的密钥与 {data_dir} 记录的密钥一致，但已存数据（{label}）无法用它解密：部分数据是用其他密钥写入的，"
            "或已损坏。已拒绝启动，未做任何修改。请从备份恢复 edge.db，或配置写入这些数据时所用的密钥。"))


def epoch_mismatch(data_dir: Path, gallery_map: Path, gallery_epoch: str, store_epoch: str) -> DataFolderError:
    return DataFolderError(
        "epoch_mismatch",
        en=(f"The gallery file {gallery_map} was written for database epoch {gallery_epoch}, but "
            f"{data_dir / 'edge.db'} has epoch {store_epoch}: this database is not the one the gallery belongs "
            "to (it was replaced, recreated, or restored from another box). The box refuses to start; nothing "
            f"was changed and the gallery is kept. To recover: put back the edge.db this gallery was written "
            f"with. To keep this database instead, move {gallery_map.parent} away; the gallery is then rebuilt "
            "from this database's enrolment photos."),
        zh=(f"人脸库文件 {gallery_map} 属于数据库纪元 {gallery_epoch}，而 {data_dir / 'edge.db'} 的纪元是 "
            f"{store_epoch}：当前数据库不是这个人脸库所属的数据库（被替换、重建或来自另一台设备）。已拒绝启动，未做任何"
            f"修改，人脸库保持原样。恢复方法：放回与该人脸库对应的 edge.db。若要保留当前数据库，请把 "
            f"{gallery_map.parent} 移走，启动时将用当前数据库中的登记照片重建人脸库。"))


def folder_busy(data_dir: Path) -> DataFolderError:
    return DataFolderError(
        "folder_busy",
        en=(f"Another process is using the data folder {data_dir} (the edge service, or an enrolment or plate "
            "command). Stop it first, then try again."),
        zh=f"另一个进程正在使用数据目录 {data_dir}（边缘服务，或登记、车牌命令）。请先停止它，再重试。")


def rotation_running(data_dir: Path) -> DataFolderError:
    return DataFolderError(
        "rotation_running",
        en=f"A key rotation is running on the data folder {data_dir}. Start again once it has finished.",
        zh=f"数据目录 {data_dir} 正在进行密钥轮换。请在轮换完成后再启动。")


def same_key(key: DataKey) -> DataFolderError:
    return DataFolderError(
        "same_key",
        en=f"The new key (key id {key.key_id}) is the key already in use: nothing to rotate.",
        zh=f"新密钥（编号 {key.key_id}）就是正在使用的密钥，无需轮换。")


def new_key_needed() -> DataFolderError:
    return DataFolderError(
        "new_key_needed",
        en=(f"The key comes from ${KEY_ENV}, which this command cannot change: make a new key (python -c "
            "\"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\" > new.key), "
            f"pass it with --new-key-file new.key, and after the rotation set ${KEY_ENV} to it."),
        zh=(f"密钥来自环境变量 ${KEY_ENV}，本命令无法修改它：请先生成新密钥（python -c \"from cryptography.fernet "
            "import Fernet; print(Fernet.generate_key().decode())\" > new.key），用 --new-key-file new.key 传入，"
            f"轮换完成后再把 ${KEY_ENV} 改为该密钥。"))


def gallery_not_rotatable(path: Path, reason: str) -> DataFolderError:
    return DataFolderError(
        "gallery_not_authentic",
        en=(f"The gallery file {path} is not authentic under the current key ({reason}), so it cannot be moved "
            "to the new key; nothing was changed. Start the service once (it sets such files aside and rebuilds "
            "the gallery from the enrolment photos), stop it, then rotate again."),
        zh=(f"人脸库文件 {path} 无法用当前密钥验证（{reason}），不能转到新密钥；未做任何修改。请先启动一次服务（它会"
            "把此类文件移到一旁，并用登记照片重建人脸库），停止后再轮换。"))


def clip_not_rotatable(path: Path, reason: str) -> DataFolderError:
    return DataFolderError(
        "clip_unreadable",
        en=(f"The clip {path} does not open with the current key ({reason}): it is unfinished, damaged, or "
            "encrypted with another key, so it cannot be moved to the new key; nothing was changed. Start the "
            "service once (it recovers unfinished clips), stop it and rotate again; or move that file out of "
            "the clips folder."),
        zh=(f"录像 {path} 无法用当前密钥打开（{reason}）：可能未写完、已损坏或用其他密钥加密，不能转到新密钥；未做任何"
            "修改。请先启动一次服务（它会修复未写完的录像），停止后再轮换；或把该文件移出录像目录。"))
