"""NVML clock-event (throttle) reason bits and the schema's boolean field for each."""

from __future__ import annotations

GPU_IDLE = 0x1
CLOCKS_SETTING = 0x2
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SYNC_BOOST = 0x10
SW_THERMAL = 0x20
HW_THERMAL = 0x40
HW_POWER_BRAKE = 0x80
DISPLAY_CLOCKS = 0x100

#: schema field -> bit (nvmlClocksEventReason*, formerly nvmlClocksThrottleReason*)
THROTTLE_BITS: dict[str, int] = {
    "throttle_gpu_idle": GPU_IDLE,
    "throttle_clocks_setting": CLOCKS_SETTING,
    "throttle_sw_power_cap": SW_POWER_CAP,
    "throttle_hw_slowdown": HW_SLOWDOWN,
    "throttle_sync_boost": SYNC_BOOST,
    "throttle_sw_thermal": SW_THERMAL,
    "throttle_hw_thermal": HW_THERMAL,
    "throttle_hw_power_brake": HW_POWER_BRAKE,
    "throttle_display_clocks": DISPLAY_CLOCKS,
}
