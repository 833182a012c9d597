"""numba kernel of the dataset random walk: controller + closed-form physics, yielding to Python for events."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .dynamics import CONTACT_RADIUS, INV_MASS, INV_MASS_H
from .model import GEAR, MAX_SPEED, TIMESTEP

# kernel return codes
FINISHED, NEW_TARGET, PHYSICS, REPLAN = 0, 1, 2, 3
# integer state slots
I_STEP, I_TS, I_WP, I_NWP, I_PHASE, I_DONE, I_DWELL = range(7)
N_INT_SLOTS = 7
# float controller slots: target cell (2), previous location (2), pending action (2)
C_TGT, C_PREV, C_ACT = 0, 2, 4


@njit(cache=True, nogil=True)
def walk(n_total, max_steps, gains, noise, noise_scale, boxes, s, sim, target, ctrl, wps, ist,
         o_obs, o_act, o_goal, o_done, o_qpos, o_qvel):  # pragma: no cover - compiled
    """Advance the walk until n_total steps or an event Python must handle; returns an event code."""
    p_gain, d_gain, solve_thresh, vel_thresh = gains[0], gains[1], gains[2], gains[3]
    r2 = CONTACT_RADIUS * CONTACT_RADIUS
    while ist[I_STEP] < n_total:
        i = ist[I_STEP]
        if ist[I_PHASE] == 0:  # controller and record
            gx, gy = np.rint(target[0]), np.rint(target[1])
            if math.sqrt((ctrl[C_TGT] - gx) ** 2 + (ctrl[C_TGT + 1] - gy) ** 2) > 1e-3:
                return REPLAN
            lx, ly = s[0], s[1]
            tx, ty = ctrl[C_TGT], ctrl[C_TGT + 1]
            dist = math.sqrt((lx - tx) * (lx - tx) + (ly - ty) * (ly - ty))
            dx, dy = ctrl[C_PREV] - lx, ctrl[C_PREV + 1] - ly
            vel_norm = math.sqrt(dx * dx + dy * dy)
            not_solved = dist >= solve_thresh or vel_norm >= vel_thresh
            if not_solved:
                wx, wy = wps[ist[I_WP], 0], wps[ist[I_WP], 1]
            else:
                wx, wy = tx, ty
            ax = p_gain * (wx - lx) + d_gain * s[2]
            ay = p_gain * (wy - ly) + d_gain * s[3]
            dist_wp = math.sqrt((lx - wx) * (lx - wx) + (ly - wy) * (ly - wy))
            if not_solved and dist_wp < solve_thresh and vel_norm < vel_thresh:
                ist[I_WP] = min(ist[I_WP] + 1, ist[I_NWP] - 1)
            ctrl[C_PREV], ctrl[C_PREV + 1] = lx, ly
            ax, ay = min(max(ax, -1.0), 1.0), min(max(ay, -1.0), 1.0)
            if noise_scale > 0.0:
                ax = min(max(ax + noise[i, 0] * noise_scale, -1.0), 1.0)
                ay = min(max(ay + noise[i, 1] * noise_scale, -1.0), 1.0)
            solved = not not_solved
            if solved and ist[I_DWELL] > 0:  # optional dwell: hold the solved target for more steps
                ist[I_DWELL] -= 1
                solved = False
            done = solved or ist[I_TS] >= max_steps
            o_obs[i, :] = s
            o_act[i, 0], o_act[i, 1] = ax, ay
            o_goal[i, :] = target
            o_done[i] = done
            o_qpos[i, 0], o_qpos[i, 1] = sim[0], sim[1]
            o_qvel[i, 0], o_qvel[i, 1] = sim[2], sim[3]
            ctrl[C_ACT], ctrl[C_ACT + 1] = ax, ay
            ist[I_DONE] = 1 if done else 0
            ist[I_PHASE] = 1
        if ist[I_PHASE] == 1:  # physics: D4RL clips qvel into the state before the step
            sim[2] = min(max(sim[2], -MAX_SPEED), MAX_SPEED)
            sim[3] = min(max(sim[3], -MAX_SPEED), MAX_SPEED)
            for b in range(boxes.shape[0]):
                ex = max(max(boxes[b, 0] - sim[0], sim[0] - boxes[b, 2]), 0.0)
                ey = max(max(boxes[b, 1] - sim[1], sim[1] - boxes[b, 3]), 0.0)
                if ex * ex + ey * ey < r2:
                    return PHYSICS  # Python runs mj_step and sets the phase to 2
            for k in range(2):
                force = -sim[2 + k] + GEAR * ctrl[C_ACT + k]
                sim[2 + k] = sim[2 + k] + TIMESTEP * (force * INV_MASS_H)
                sim[k] = sim[k] + TIMESTEP * sim[2 + k]
                sim[4 + k] = force * INV_MASS
            ist[I_PHASE] = 2
        # bookkeeping after the step
        ist[I_TS] += 1
        ist[I_STEP] += 1
        ist[I_PHASE] = 0
        if ist[I_DONE] == 1:
            ist[I_TS] = 0
            return NEW_TARGET  # s is NOT advanced: D4RL's duplicated observation at every goal switch
        s[0], s[1], s[2], s[3] = sim[0], sim[1], sim[2], sim[3]
    return FINISHED
