"""Messages of ``smartbranch calibrate``: Simplified Chinese first, English with ``--lang en``."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "error": "标定失败：{message}",
        "no_images": "文件夹 {folder} 中没有图片（.jpg .jpeg .png .bmp .webp）",
        "not_a_folder": "{folder} 不是文件夹",
        "bad_board": "棋盘格规格应写成 列x行 的内角点数，例如 9x6，收到 {board!r}",
        "unreadable": "  ✗ {name}：无法读取为图片",
        "size_mismatch": "图片 {name} 为 {size}，而 {first} 为 {first_size}：所有快照须来自同一分辨率",
        "found": "  ✓ {name}：找到 {corners} 个角点",
        "not_found": "  ✗ {name}：未找到 {board} 棋盘格（须完整可见、清晰、光照均匀）",
        "lens_header": "镜头标定：{used}/{total} 张图片可用，图像尺寸 {w}x{h}",
        "lens_result": "fx={fx:.2f} fy={fy:.2f} cx={cx:.2f} cy={cy:.2f}；畸变 k1={k1:.4f} k2={k2:.4f} "
                       "p1={p1:.5f} p2={p2:.5f} k3={k3:.4f}",
        "lens_rms": "重投影误差 RMS {rms:.3f} 像素（< 0.5 良好，> 1 建议重拍）；各图：{per_image}",
        "preview": "去畸变预览已写入 {path}",
        "paste": "将以下内容加入摄像头 {camera} 的配置：",
        "paste_any": "将以下内容加入对应摄像头的配置：",
        "saved": "已保存到 {path}（版本 {version}）：摄像头 {camera} 的{what}",
        "what_lens": "镜头参数",
        "what_floor": "地面标定",
        "json": "结果已写入 {path}",
        "no_camera": "配置中没有摄像头 {camera}（现有：{cameras}）",
        "not_counter": "摄像头 {camera} 的角色是 {role}；地面标定用于柜台摄像头（role: counter）",
        "csv_unreadable": "无法读取点文件 {path}：{error}",
        "csv_row": "点文件 {path} 第 {line} 行应为 x_px,y_px,x_m,y_m 四个数字，收到 {row!r}",
        "floor_header": "地面标定：{count} 个点，RANSAC {ransac}",
        "floor_columns": "点   图像(像素)           地面(米)          误差(米)  误差(像素)  采用",
        "floor_rms": "采用点的 RMS：{rms_m:.3f} 米 / {rms_px:.2f} 像素",
        "floor_outliers": "点 {points} 与其余点不在同一平面上（可能点错），已剔除；请检查或重新测量",
        "floor_too_far": "最大误差 {error:.2f} 米超过 {limit} 米：请检查点位与测量值",
        "yes": "是",
        "no": "否",
    },
    "en": {
        "error": "Calibration failed: {message}",
        "no_images": "No images (.jpg .jpeg .png .bmp .webp) in {folder}",
        "not_a_folder": "{folder} is not a folder",
        "bad_board": "Give the board as inner corners COLSxROWS, e.g. 9x6; got {board!r}",
        "unreadable": "  x {name}: not readable as an image",
        "size_mismatch": "Image {name} is {size} but {first} is {first_size}: all snapshots must have one resolution",
        "found": "  ok {name}: {corners} corners found",
        "not_found": "  x {name}: no {board} board found (it must be whole, sharp and evenly lit)",
        "lens_header": "Lens calibration: {used}/{total} images usable, image size {w}x{h}",
        "lens_result": "fx={fx:.2f} fy={fy:.2f} cx={cx:.2f} cy={cy:.2f}; distortion k1={k1:.4f} k2={k2:.4f} "
                       "p1={p1:.5f} p2={p2:.5f} k3={k3:.4f}",
        "lens_rms": "Reprojection RMS {rms:.3f} px (< 0.5 good, > 1 retake the snapshots); per image: {per_image}",
        "preview": "Undistorted preview written to {path}",
        "paste": "Add this to camera {camera} in the config:",
        "paste_any": "Add this to the camera's entry in the config:",
        "saved": "Saved to {path} (version {version}): camera {camera}'s {what}",
        "what_lens": "lens",
        "what_floor": "floor calibration",
        "json": "Result written to {path}",
        "no_camera": "The config has no camera {camera} (it has: {cameras})",
        "not_counter": "Camera {camera} has role {role}; floor calibration is for counter cameras (role: counter)",
        "csv_unreadable": "Cannot read the points file {path}: {error}",
        "csv_row": "Points file {path} line {line} must be four numbers x_px,y_px,x_m,y_m; got {row!r}",
        "floor_header": "Floor calibration: {count} points, RANSAC {ransac}",
        "floor_columns": "pt   image (px)           floor (m)         err (m)   err (px)    kept",
        "floor_rms": "RMS over the kept points: {rms_m:.3f} m / {rms_px:.2f} px",
        "floor_outliers": "Points {points} do not fit the same plane as the others (a mis-click?) and were set aside; "
                          "check or re-measure them",
        "floor_too_far": "Worst error {error:.2f} m exceeds {limit} m: check the marks and their measurements",
        "yes": "yes",
        "no": "no",
    },
}


def t(key: str, lang: str, **values: object) -> str:
    return MESSAGES[lang][key].format(**values)
