"""Terminal messages: Simplified Chinese first, English with ``--lang en`` or SMARTBRANCH_LANG=en."""

from __future__ import annotations

import os

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "alert_vip": "【VIP 到店】{name}（{tier}）· 摄像头 {camera} · {time} · 相似度 {score:.3f} · 序号 {seq}",
        "alert_vip_vehicle": "【VIP 车辆到达】{name}（{tier}）· 车牌 {plate} · 摄像头 {camera} · {time} · 序号 {seq}",
        "driver_confirmed": " · 驾驶员人脸已确认",
        "alert_service_start": "【开始服务】{staff} → {customer} · 摄像头 {camera} · {time} · 序号 {seq}",
        "alert_service_end": ("【服务结束】{staff} → {customer} · 时长 {duration} 秒"
                              " · 摄像头 {camera} · {time} · 序号 {seq}"),
        "alert_unattended": ("【{title}】{customer} 在 {zone} 已等待 {waited} 秒"
                             " · 摄像头 {camera} · {time} · 序号 {seq}"),
        "alert_unstaffed": "【柜台无人】{zone} 已 {gap} 秒无员工 · 摄像头 {camera} · {time} · 序号 {seq}",
        "unidentified_staff": "未识别员工",
        "a_customer": "顾客",
        "plate_added": "已登记车牌：{plate}（{kind}）→ {name}，编号 {id}",
        "plate_removed": "已删除车牌：{plate}",
        "plate_failed": "车牌登记失败：{message}（{code}）",
        "plates_none": "没有登记的车牌。",
        "pair_code": "平板配对码（{name}）：{code}    {minutes} 分钟内有效，只能使用一次",
        "pair_hint": "在平板浏览器中打开 http://{host}:{port}/terminal ，输入上面的配对码。",
        "pairings_none": "没有配对的平板。",
        "pairing_revoked": "已撤销配对：{name}（{id}）",
        "pairing_not_found": "没有编号为 {id} 的配对。",
        "serving": "终端页面：{url}",
        "serving_hint": "在平板浏览器中打开上面的链接（链接内含访问令牌）。按 Ctrl+C 退出。",
        "serving_hint_no_token": ("在平板浏览器中打开上面的链接，输入配对码（由 smartbranch pair --name <平板名称> "
                                  "生成），或在地址后加上 ?token=<大堂经理令牌>"
                                  "（由 smartbranch token new --roles lobby_manager 生成；本服务只保存令牌的哈希，"
                                  "无法显示令牌）。按 Ctrl+C 退出。"),
        "enrolled": "已登记：{name}（{tier}，{role}），编号 {id}",
        "enrol_failed": "登记失败：{message}（{code}）",
        "photo_added": "已为 {name}（编号 {id}）添加照片，共 {photos} 张；识别模板已更新为各照片特征的平均值",
        "config_error": "配置错误：{message}",
        "data_error": "数据目录错误（{code}）：{message}",
        "keys_rotated": ("数据密钥已轮换：新密钥编号 {key_id}（旧密钥 {old_id} 从此无法打开数据）；"
                         "重新加密 {values} 项数据、{maps} 个人脸库索引、{clips} 段录像。"),
        "keys_rotated_file": "新密钥已写入 {path}（权限 0600）。请同时更新密钥的备份。",
        "keys_rotated_env": "请把环境变量 $SMARTBRANCH_DATA_KEY 改为 {path} 中的新密钥，然后再启动服务。",
        "model_error": "模型文件错误：{message}",
        "demo_building": "正在用真实照片生成演示视频……",
        "demo_video": "演示视频：{path}（{seconds:.0f} 秒，{people} 人次进门，其中 VIP 1 人）",
        "demo_enrolled": "已登记 VIP：{name}（{tier}），登记照片 {photo}，视频中使用另一张照片",
        "demo_done": "演示结束：共推送 {count} 条提醒。",
        "demo_serve": "视频已播完，服务继续运行（--serve）。",
        "demo_counter_skipped": "未安装人体检测模型（make 安装时用 npm 获取），跳过柜台演示。",
        "demo_staff_enrolled": "已登记员工：{name}（照片 {photo}），柜台摄像头演示 VIP 等候、无人接待提醒和一次服务",
        "demo_clips": "柜台服务录像：{count} 段，保存在 {folder}",
        "demo_synced": "已从控制台同步：{name}（{role}），人脸库版本 {version}；本机未登记任何人",
        "demo_sync_none": "未从控制台收到 VIP（{error}）；演示照常运行，但不会有 VIP 到店提醒",
        "camera_unhealthy": "摄像头 {camera} 异常：{error}（正在重试）",
        "token_new": "新令牌（只显示一次，请妥善保存）：{token}",
        "token_yaml": "请把下面几行加入配置文件的 auth.tokens：",
        "models_header": "模型包               许可证                                         商用  状态",
        "stopped": "已停止。",
    },
    "en": {
        "alert_vip": "[VIP arrival] {name} ({tier}) · camera {camera} · {time} · score {score:.3f} · seq {seq}",
        "alert_vip_vehicle": "[VIP vehicle] {name} ({tier}) · plate {plate} · camera {camera} · {time} · seq {seq}",
        "driver_confirmed": " · driver's face confirmed",
        "alert_service_start": "[Service started] {staff} -> {customer} · camera {camera} · {time} · seq {seq}",
        "alert_service_end": ("[Service ended] {staff} -> {customer} · {duration} s"
                              " · camera {camera} · {time} · seq {seq}"),
        "alert_unattended": ("[{title}] {customer} waiting {waited} s in {zone}"
                             " · camera {camera} · {time} · seq {seq}"),
        "alert_unstaffed": ("[Counter unstaffed] {zone} without staff for {gap} s"
                            " · camera {camera} · {time} · seq {seq}"),
        "unidentified_staff": "unidentified staff",
        "a_customer": "a customer",
        "plate_added": "Plate registered: {plate} ({kind}) -> {name}, id {id}",
        "plate_removed": "Plate removed: {plate}",
        "plate_failed": "Plate refused: {message} ({code})",
        "plates_none": "No plates registered.",
        "pair_code": "Tablet pairing code ({name}): {code}    valid for {minutes} minutes, once",
        "pair_hint": "Open http://{host}:{port}/terminal in the tablet's browser and enter the code above.",
        "pairings_none": "No paired tablets.",
        "pairing_revoked": "Pairing revoked: {name} ({id})",
        "pairing_not_found": "No pairing with id {id}.",
        "serving": "Terminal page: {url}",
        "serving_hint": "Open the link above on the tablet (it carries the access token). Ctrl+C to quit.",
        "serving_hint_no_token": ("Open the link above on the tablet and enter a pairing code (made by smartbranch "
                                  "pair --name <tablet>), or add ?token=<lobby manager token> to it "
                                  "(made by smartbranch token new --roles lobby_manager; this service keeps only "
                                  "token hashes and cannot show one). Ctrl+C to quit."),
        "enrolled": "Enrolled: {name} ({tier}, {role}), id {id}",
        "enrol_failed": "Enrolment refused: {message} ({code})",
        "photo_added": "Photo added for {name} (id {id}): {photos} photos; the recognition template is now their mean",
        "config_error": "Configuration error: {message}",
        "data_error": "Data folder error ({code}): {message}",
        "keys_rotated": ("Data key rotated: new key id {key_id} (the old key {old_id} no longer opens the data); "
                         "re-encrypted {values} stored values, {maps} gallery id maps and {clips} clips."),
        "keys_rotated_file": "The new key is in {path} (mode 0600). Update your backup of the key too.",
        "keys_rotated_env": "Set $SMARTBRANCH_DATA_KEY to the new key in {path}, then start the service.",
        "model_error": "Model file error: {message}",
        "demo_building": "Building the demo video from real photos...",
        "demo_video": "Demo video: {path} ({seconds:.0f} s, {people} walk-ins, one of them the VIP)",
        "demo_enrolled": "Enrolled VIP: {name} ({tier}) from {photo}; the video uses a different photo",
        "demo_done": "Demo finished: {count} alert(s) pushed.",
        "demo_serve": "The video has ended; still serving (--serve).",
        "demo_counter_skipped": "Person detector not installed (make fetches it with npm); counter demo skipped.",
        "demo_staff_enrolled": ("Enrolled staff: {name} (photo {photo}); the counter camera shows the VIP waiting, "
                                "an unattended alert and one service"),
        "demo_clips": "Counter service clips: {count}, in {folder}",
        "demo_synced": "Received from the console: {name} ({role}), gallery version {version}; nobody enrolled here",
        "demo_sync_none": "No VIP received from the console ({error}); the demo runs, but without a VIP alert",
        "camera_unhealthy": "Camera {camera} unhealthy: {error} (retrying)",
        "token_new": "New token (shown once, keep it safe): {token}",
        "token_yaml": "Add these lines under auth.tokens in the config file:",
        "models_header": "pack                 licence                                        comm. status",
        "stopped": "Stopped.",
    },
}


def language(explicit: str | None = None) -> str:
    lang = (explicit or os.environ.get("SMARTBRANCH_LANG") or "zh").lower()
    return "en" if lang.startswith("en") else "zh"


def t(key: str, lang: str, **values: object) -> str:
    return MESSAGES[lang][key].format(**values)


# --- face evaluation and calibration (edge/evaluation/eval_faces.py, calibrate_faces.py) ---
_FACE_EVAL_MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "ev_progress": "提取人脸特征",
        "ev_error": "评测数据错误：{message}",
        "ev_header": "人脸识别评测：引擎 {engine}（{model_id}），{images} 张图像，其中 {no_face} 张未检出人脸；"
                     "每张检测+特征 {ms:.0f} ms（中位数）",
        "ev_identities": "开放集身份来源：{source}；随机种子 {seed}",
        "ev_columns": "组别|对数|准确率(k折)|检出子集准确率|TAR@FAR=1e-3|FNIR@FPIR=1e-2|FNIR@FPIR=1e-3|无人脸",
        "ev_thresholds": "阈值（{name}）：最佳准确率 {acc}；FAR=1e-3 {tar}；FPIR=1e-2 {f2}；FPIR=1e-3 {f3}",
        "ev_unresolved": "“-”表示负样本太少，无法分辨该比率（需要 比率×负样本数 ≥ 1），不做外推。",
        "ev_mixed": "{count} 个跨组的样本对只计入总体。",
        "ev_written": "结果已写入 {path}",
        "cal_progress": "提取特征（含增强）",
        "cal_header": "阈值标定：目标 FPIR {target}（轨迹级，每条轨迹最多 {k} 次观测），"
                      "{enrolled} 人入库，{mated} 条已登记人员轨迹，{nonmated} 条陌生人轨迹",
        "cal_current": "当前配置：threshold={threshold} min_margin={margin} min_votes={votes} → "
                       "FPIR {fpir}（{false}/{n}），命中率 {hit}，误认 {wrong}",
        "cal_chosen": "标定结果：threshold={threshold} min_margin={margin} min_votes={votes} → "
                      "FPIR {fpir}（{false}/{n}，95% 上界 {upper}），命中率 {hit}（FNIR {fnir}），误认 {wrong}",
        "cal_unresolved": "注意：只有 {n} 条陌生人轨迹，无法分辨 FPIR {target}（分辨率 {resolution}）。"
                          "已选取陌生人轨迹零误报的最保守设置；要验证该目标，至少需要 {needed} 条陌生人轨迹。",
        "cal_none": "没有任何设置满足目标 FPIR。",
        "cal_written": "已写入配置 {path}（face.voter）",
        "cal_dry_run": "试运行：未修改配置文件。",
        "cal_comments_lost": "注意：无法在保留注释的情况下修改该文件，已按原内容重新写出（注释已丢失）。",
        "ev_adapt_header": "人群自适应（不用标签，统计来自全部被评测照片）：{faces} 张人脸，收缩比例 {shrinkage}，"
                           "变换 {digest}。未自适应 → 自适应：",
        "ev_adapt_given": "人群自适应（给定变换 {path}，拟合自 {faces} 张人脸，收缩比例 {shrinkage}，变换 {digest}）。"
                          "未自适应 → 自适应：",
        "ev_adapt_off": "未做人群自适应：{reason}",
        "ev_adapt_whitened": "对照（不经选择、一律白化）：准确率 {acc}，TAR@FAR=1e-2 {tar}，FNIR@FPIR=1e-2 {fnir}；"
                             "按折拟合 准确率 {honest_acc}，FNIR@FPIR=1e-2 {honest_fnir}",
        "ev_adapt_choice": "自适应选择（与盒子相同）：{branch}；阈值 {threshold} 处两名陌生人的估计匹配率 {rate}，"
                           "分界 {cutoff}",
        "ev_adapt_columns": "组别|准确率(k折)|TAR@FAR=1e-2|FNIR@FPIR=1e-2",
        "ev_adapt_honest": "按折拟合（每折只用其余 {folds} 折的照片拟合）：准确率 {acc}±{std}，TAR@FAR=1e-2 {tar}，"
                           "FNIR@FPIR=1e-2 {fnir}",
        "cal_adapted": "人群自适应（{faces} 张人脸，收缩比例 {shrinkage}）：目标 FPIR 下轨迹命中率 {hit_before}"
                       "（FPIR {fpir_before}）→ {hit_after}（FPIR {fpir_after}）；自适应空间中的设置 "
                       "threshold={threshold} min_margin={margin} min_votes={votes}（face.voter 保留未自适应的设置）",
        "cal_photos_columns": "照片数  入库人数  登记人轨迹  陌生人轨迹  命中率  FPIR  （未自适应：命中率 / FPIR）",
        "cal_population_written": "自适应变换及其投票设置已写入 {path}",
    },
    "en": {
        "ev_progress": "embedding faces",
        "ev_error": "Evaluation data error: {message}",
        "ev_header": "Face evaluation: engine {engine} ({model_id}), {images} images, {no_face} without a face found; "
                     "detect+embed {ms:.0f} ms per image (median)",
        "ev_identities": "Open-set identities from: {source}; seed {seed}",
        "ev_columns": "set|pairs|accuracy (k-fold)|acc. faces found|TAR@FAR=1e-3|FNIR@FPIR=1e-2|FNIR@FPIR=1e-3|no face",
        "ev_thresholds": "Thresholds ({name}): best accuracy {acc}; FAR=1e-3 {tar}; FPIR=1e-2 {f2}; FPIR=1e-3 {f3}",
        "ev_unresolved": "'-' means too few negatives to resolve that rate (rate x negatives must be >= 1); "
                         "nothing is extrapolated.",
        "ev_mixed": "{count} pair(s) across groups count in the overall figures only.",
        "ev_written": "Results written to {path}",
        "cal_progress": "embedding (with augmentations)",
        "cal_header": "Calibration: target FPIR {target} (per track, up to {k} observations a track), "
                      "{enrolled} enrolled, {mated} enrolled-person tracks, {nonmated} stranger tracks",
        "cal_current": "Current config: threshold={threshold} min_margin={margin} min_votes={votes} -> "
                       "FPIR {fpir} ({false}/{n}), hit rate {hit}, misidentified {wrong}",
        "cal_chosen": "Chosen: threshold={threshold} min_margin={margin} min_votes={votes} -> "
                      "FPIR {fpir} ({false}/{n}, 95% upper bound {upper}), hit rate {hit} (FNIR {fnir}), "
                      "misidentified {wrong}",
        "cal_unresolved": "Note: only {n} stranger tracks cannot resolve FPIR {target} (resolution {resolution}). "
                          "The most conservative setting with no stranger track decided was chosen; verifying the "
                          "target needs at least {needed} stranger tracks.",
        "cal_none": "No setting meets the target FPIR.",
        "cal_written": "Config written: {path} (face.voter)",
        "cal_dry_run": "Dry run: the config file was not changed.",
        "cal_comments_lost": "Note: the file could not be edited in place with its comments; it was rewritten "
                             "from its content (comments lost).",
        "ev_adapt_header": "Population adaptation (no labels; statistics of every evaluated photo): {faces} faces, "
                           "shrinkage {shrinkage}, transform {digest}. Unadapted -> adapted:",
        "ev_adapt_given": "Population adaptation (given transform {path}, fitted on {faces} faces, shrinkage "
                          "{shrinkage}, transform {digest}). Unadapted -> adapted:",
        "ev_adapt_off": "Not adapted: {reason}",
        "ev_adapt_whitened": "For comparison, whitened regardless of the choice: accuracy {acc}, TAR@FAR=1e-2 {tar}, "
                             "FNIR@FPIR=1e-2 {fnir}; fold-honest accuracy {honest_acc}, FNIR@FPIR=1e-2 {honest_fnir}",
        "ev_adapt_choice": "Adaptation choice (as at the box): {branch}; estimated stranger-pair match rate at the "
                           "threshold {threshold} {rate}, cutoff {cutoff}",
        "ev_adapt_columns": "set|accuracy (k-fold)|TAR@FAR=1e-2|FNIR@FPIR=1e-2",
        "ev_adapt_honest": "Fold-honest (each fold adapted by a fit on the other {folds} folds' photos only): "
                           "accuracy {acc}±{std}, TAR@FAR=1e-2 {tar}, FNIR@FPIR=1e-2 {fnir}",
        "cal_adapted": "Population adaptation ({faces} faces, shrinkage {shrinkage}): track hit rate at the target "
                       "FPIR {hit_before} (FPIR {fpir_before}) -> {hit_after} (FPIR {fpir_after}); setting in the "
                       "adapted space threshold={threshold} min_margin={margin} min_votes={votes} (face.voter keeps "
                       "the unadapted one)",
        "cal_photos_columns": "photos  enrolled  mated  strangers  hit rate  FPIR   (unadapted: hit rate / FPIR)",
        "cal_population_written": "Adapted transform and its voter setting written to {path}",
    },
}
for _lang, _messages in _FACE_EVAL_MESSAGES.items():
    MESSAGES[_lang].update(_messages)
