"""Terminal messages: Simplified Chinese first, English with ``--lang en`` or SMARTBRANCH_LANG=en."""

from __future__ import annotations

import os

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "alert_vip": "【VIP 到店】{name}（{tier}）· 摄像头 {camera} · {time} · 相似度 {score:.3f} · 序号 {seq}",
        "serving": "终端页面：{url}",
        "serving_hint": "在平板浏览器中打开上面的链接（链接内含访问令牌）。按 Ctrl+C 退出。",
        "enrolled": "已登记：{name}（{tier}，{role}），编号 {id}",
        "enrol_failed": "登记失败：{message}（{code}）",
        "config_error": "配置错误：{message}",
        "model_error": "模型文件错误：{message}",
        "demo_building": "正在用真实照片生成演示视频……",
        "demo_video": "演示视频：{path}（{seconds:.0f} 秒，{people} 人次进门，其中 VIP 1 人）",
        "demo_enrolled": "已登记 VIP：{name}（{tier}），登记照片 {photo}，视频中使用另一张照片",
        "demo_done": "演示结束：共推送 {count} 条提醒。",
        "demo_serve": "视频已播完，服务继续运行（--serve）。",
        "camera_unhealthy": "摄像头 {camera} 异常：{error}（正在重试）",
        "token_new": "新令牌（只显示一次，请妥善保存）：{token}",
        "token_yaml": "请把下面几行加入配置文件的 auth.tokens：",
        "models_header": "模型包               许可证                                         商用  状态",
        "stopped": "已停止。",
    },
    "en": {
        "alert_vip": "[VIP arrival] {name} ({tier}) · camera {camera} · {time} · score {score:.3f} · seq {seq}",
        "serving": "Terminal page: {url}",
        "serving_hint": "Open the link above on the tablet (it carries the access token). Ctrl+C to quit.",
        "enrolled": "Enrolled: {name} ({tier}, {role}), id {id}",
        "enrol_failed": "Enrolment refused: {message} ({code})",
        "config_error": "Configuration error: {message}",
        "model_error": "Model file error: {message}",
        "demo_building": "Building the demo video from real photos...",
        "demo_video": "Demo video: {path} ({seconds:.0f} s, {people} walk-ins, one of them the VIP)",
        "demo_enrolled": "Enrolled VIP: {name} ({tier}) from {photo}; the video uses a different photo",
        "demo_done": "Demo finished: {count} alert(s) pushed.",
        "demo_serve": "The video has ended; still serving (--serve).",
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
