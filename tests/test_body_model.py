"""Body model: the generated stand-in loads in smplx unchanged and poses/shapes as SMPL does; camera; head box."""

from __future__ import annotations

import math

import numpy as np
import pytest
import smplx
import torch

from lwgan.body import (
    FACE_VERTEX_IDS, PARENTS, generate_body_model, head_box, load_body_model, ndc_to_pixels, pixels_to_ndc, project,
)
from lwgan.body.commands import command_generate
from lwgan.errors import DataError


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return generate_body_model(tmp_path_factory.mktemp("body") / "generated.npz", seed=0)


@pytest.fixture(scope="module")
def body(model_path):
    return load_body_model(model_path)


def _pose(**joint_axis_angle) -> torch.Tensor:
    pose = torch.zeros(1, 72)
    for joint, aa in joint_axis_angle.items():
        j = int(joint[1:])
        pose[0, 3 * j : 3 * j + 3] = torch.tensor(aa)
    return pose


def test_generated_file_loads_in_plain_smplx_and_matches_body_model(model_path, body, capsys):
    data = dict(np.load(model_path))
    layer = smplx.SMPL(model_path=str(model_path), data_struct=smplx.utils.Struct(**data), batch_size=2)
    capsys.readouterr()
    betas = torch.tensor([[1.0, -0.5] + [0.0] * 8, [0.0] * 10])
    pose = torch.zeros(2, 72)
    pose[0, 3 * 4] = 0.7  # left knee
    out = layer(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:])
    mine = body(pose, betas)
    assert mine.vertices.shape == (2, 6890, 3) and mine.joints.shape == (2, 24, 3)
    torch.testing.assert_close(mine.vertices, out.vertices, rtol=0, atol=1e-6)
    torch.testing.assert_close(mine.joints, out.joints[:, :24], rtol=0, atol=1e-6)


def test_generated_arrays_are_a_valid_smpl_model(model_path, body):
    data = dict(np.load(model_path))
    v, f = data["v_template"], data["f"]
    assert v.shape[0] >= 6890 and body.num_vertices == v.shape[0]
    assert f.min() == 0 and f.max() == v.shape[0] - 1  # every vertex is used
    assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f)  # no duplicate faces
    np.testing.assert_allclose(data["weights"].sum(1), 1.0, atol=1e-9)
    assert (data["weights"] >= 0).all()
    reg = data["J_regressor"]
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-9)
    assert (reg >= 0).all() and ((reg > 0).sum(1) <= 400).all()  # sparse rows
    np.testing.assert_allclose(reg @ v, data["J"], atol=1e-9)
    assert list(data["kintree_table"][0, 1:]) == list(PARENTS[1:])
    assert data["shapedirs"].shape == (v.shape[0], 3, 10) and data["posedirs"].shape == (v.shape[0], 3, 207)
    assert np.abs(data["posedirs"]).max() > 0  # a real (small) corrective, not zeros
    assert str(data["kind"]) == "generated" and body.kind == "generated"
    # Plausible SMPL proportions: y up, about 1.6-1.9 m tall, head above pelvis, left hand at +x.
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.9
    assert data["J"][15, 1] > data["J"][0, 1] and data["J"][22, 0] > 0.6 > -0.6 > data["J"][23, 0]


def test_rest_pose_joints_are_the_regressed_template(body, model_path):
    out = body(torch.zeros(1, 72), torch.zeros(1, 10))
    np.testing.assert_allclose(out.joints[0].numpy(), np.load(model_path)["J"], atol=1e-5)


def test_rotating_the_left_elbow_moves_only_the_forearm_chain(body):
    rest = body(torch.zeros(1, 72), torch.zeros(1, 10)).joints[0]
    angle = math.pi / 2
    posed = body(_pose(j18=[0.0, angle, 0.0]), torch.zeros(1, 10)).joints[0]  # about +y
    moved = {20, 22}
    for j in range(24):
        if j not in moved:
            torch.testing.assert_close(posed[j], rest[j], atol=1e-5, rtol=0)
    rot_y = torch.tensor([[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]])
    for j in moved:
        expected = rest[18] + rot_y @ (rest[j] - rest[18])
        torch.testing.assert_close(posed[j], expected, atol=1e-5, rtol=0)


def test_global_orient_flip_turns_the_body_upside_down_for_the_camera(body):
    rest = body(torch.zeros(1, 72), torch.zeros(1, 10))
    flipped = body(_pose(j0=[math.pi, 0.0, 0.0]), torch.zeros(1, 10))
    # HMR's 180 degrees about x: the head ends up at smaller y than the pelvis (image +y is down).
    assert flipped.joints[0, 15, 1] < flipped.joints[0, 0, 1]
    assert rest.joints[0, 15, 1] > rest.joints[0, 0, 1]


def test_beta0_changes_height_monotonically(body):
    betas = torch.zeros(5, 10)
    betas[:, 0] = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    v = body(torch.zeros(5, 72), betas).vertices
    height = v[..., 1].amax(1) - v[..., 1].amin(1)
    assert (torch.diff(height) > 0.02).all(), height


def test_beta1_changes_girth_not_height(body, model_path):
    betas = torch.zeros(3, 10)
    betas[:, 1] = torch.tensor([-1.5, 0.0, 1.5])
    v = body(torch.zeros(3, 72), betas).vertices
    weights = np.load(model_path)["weights"]
    torso = torch.from_numpy(weights[:, [0, 3, 6]].sum(1) > 0.5)
    waist_width = v[:, torso, 0].amax(1) - v[:, torso, 0].amin(1)
    assert (torch.diff(waist_width) > 0.01).all(), waist_width
    height = v[..., 1].amax(1) - v[..., 1].amin(1)
    assert (height.max() - height.min()) / height[1] < 0.02


def test_face_landmark_ids_sit_on_the_head(body, model_path):
    weights = np.load(model_path)["weights"]
    rest = body(torch.zeros(1, 72), torch.zeros(1, 10))
    verts, joints = rest.vertices[0], rest.joints[0]
    for name, vid in FACE_VERTEX_IDS.items():
        assert weights[vid].argmax() == 15, name
        assert verts[vid, 1] > joints[12, 1], name  # above the neck joint
    assert verts[FACE_VERTEX_IDS["nose"], 2] > verts[FACE_VERTEX_IDS["left_ear"], 2]  # the nose is in front
    assert verts[FACE_VERTEX_IDS["left_eye"], 0] > 0 > verts[FACE_VERTEX_IDS["right_eye"], 0]
    assert verts[FACE_VERTEX_IDS["left_ear"], 0] > verts[FACE_VERTEX_IDS["left_eye"], 0]


def test_vertex_uv_is_a_per_part_atlas(body, model_path):
    uv = body.vertex_uv.numpy()
    assert uv.shape == (body.num_vertices, 2) and uv.min() >= 0 and uv.max() <= 1
    part = np.load(model_path)["weights"].argmax(1)
    cells = np.floor(uv * [6, 4]).astype(int)
    cell_id = cells[:, 1] * 6 + cells[:, 0]
    assert (cell_id == part).all()  # every part lives in its own atlas cell
    torso = part == 0
    assert uv[torso, 1].max() - uv[torso, 1].min() > 0.15  # v spans the part


def test_generation_is_deterministic_by_seed(tmp_path, model_path):
    again = generate_body_model(tmp_path / "again.npz", seed=0)
    other = generate_body_model(tmp_path / "other.npz", seed=1)
    a, b, c = np.load(model_path), np.load(again), np.load(other)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["v_template"], c["v_template"])
    np.testing.assert_array_equal(a["f"], c["f"])


def test_load_none_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))
    first = load_body_model(None)
    path = tmp_path / "cache" / "body" / "generated_seed0.npz"
    assert first.source == str(path) and first.kind == "generated" and path.is_file()
    stamp = path.stat().st_mtime_ns
    second = load_body_model(None)
    assert path.stat().st_mtime_ns == stamp and second.source == first.source


def test_missing_and_corrupt_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="nope.npz: body model file not found"):
        load_body_model(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_body_model(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((10, 3)))
    with pytest.raises(DataError, match=r"partial.npz: not an SMPL model, missing keys \['shapedirs'"):
        load_body_model(partial)


def test_projection_and_pixel_round_trip():
    pts = torch.tensor([[[0.1, -0.2, 3.0], [-1.0, 0.5, -2.0]]])
    cam = torch.tensor([[2.0, 0.5, -0.25]])
    out = project(pts, cam)
    torch.testing.assert_close(out, torch.tensor([[[1.2, -0.9, 3.0], [-1.0, 0.5, -2.0]]]))
    assert ndc_to_pixels(torch.tensor([-1.0, 1.0, 0.0]), 64).tolist() == [0.0, 63.0, 31.5]
    xy = torch.rand(100, 2) * 2 - 1
    torch.testing.assert_close(pixels_to_ndc(ndc_to_pixels(xy, 37), 37), xy)


def test_head_box_contains_the_projected_head(body):
    size = 64
    pose = _pose(j0=[math.pi, 0.0, 0.0])
    out = body(pose, torch.zeros(1, 10))
    cam = torch.tensor([[0.9, 0.0, 0.1]])
    joints = project(out.joints, cam)[..., :2]
    verts = project(out.vertices, cam)[..., :2]
    box = head_box(joints, verts, size, body.head_vertex_ids)[0]
    x0, y0, x1, y1 = box.tolist()
    assert box.dtype == torch.long and 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
    for point in (joints[0, 15], joints[0, 12], verts[0, FACE_VERTEX_IDS["nose"]], verts[0, body.crown_vertex]):
        px, py = ndc_to_pixels(point, size).tolist()
        assert x0 <= px < x1 and y0 <= py < y1
    crown_px = ndc_to_pixels(verts[0, body.crown_vertex], size)
    assert y0 <= crown_px[1] - 0.05 * size  # padded above the crown, not only above the head joint
    assert x1 - x0 < size / 2  # a head, not the body


def test_face_landmarks_are_smplx_table_and_crown_is_the_top_of_the_head(body, model_path):
    table = smplx.vertex_ids.vertex_ids["smplh"]  # the table smplx's SMPL layer uses for its extra joints
    assert FACE_VERTEX_IDS == {"nose": table["nose"], "left_eye": table["leye"], "right_eye": table["reye"],
                               "left_ear": table["lear"], "right_ear": table["rear"]}
    assert FACE_VERTEX_IDS["left_ear"] == 583 and FACE_VERTEX_IDS["right_ear"] == 4071
    data = np.load(model_path)
    head_verts = np.nonzero(data["weights"].argmax(1) == 15)[0]
    top = head_verts[np.argmax(data["v_template"][head_verts, 1])]
    assert body.crown_vertex == top and data["v_template"][top, 1] == data["v_template"][head_verts, 1].max()
    assert body.head_vertex_ids.tolist() == [*FACE_VERTEX_IDS.values(), top]


def test_head_box_on_a_posed_body_spans_neck_to_crown_and_tilts_with_the_head(body):
    """Posed (neck and head bent sideways, arms raised): the box is the reference's padding around neck,
    head, face landmarks and crown (hand-computed), its top is the crown's, and it is narrower than the body."""
    size = 128
    pose = _pose(j0=[math.pi, 0.0, 0.0], j12=[0.0, 0.0, 0.35], j15=[0.0, 0.0, 0.3], j16=[0.0, 0.0, -1.0], j17=[0.0, 0.0, 1.0])
    out = body(pose, torch.zeros(1, 10))
    cam = torch.tensor([[0.8, 0.05, 0.2]])
    joints, verts = project(out.joints, cam)[..., :2], project(out.vertices, cam)[..., :2]
    x0, y0, x1, y1 = head_box(joints, verts, size, body.head_vertex_ids)[0].tolist()
    crown = ndc_to_pixels(verts[0, body.crown_vertex], size)
    pad = 0.05 * size
    points = torch.cat([ndc_to_pixels(joints[0, [12, 15]], size), ndc_to_pixels(verts[0, body.head_vertex_ids], size)])
    assert float(crown[1]) == float(points[:, 1].min())  # the crown is the topmost landmark of the tilted head
    assert y0 == math.floor(float(crown[1]) - pad)  # padded 5% of the image above the crown
    assert x0 == math.floor(float(points[:, 0].min()) - pad) and x1 == math.ceil(float(points[:, 0].max()) + pad) + 1
    assert y1 == math.ceil(float(points[:, 1].max())) + 1  # no padding below
    body_px = ndc_to_pixels(verts[0], size)
    assert (x1 - x0) < 0.5 * float(body_px[:, 0].max() - body_px[:, 0].min())
    # the box without the crown (the old landmark set) is shorter: the crown adds the top of the head
    no_crown = head_box(joints, verts, size, body.head_vertex_ids[:-1])[0].tolist()
    assert no_crown[1] > y0 and no_crown[3] == y1


def test_head_box_is_clamped_to_the_image():
    joints = torch.zeros(1, 24, 2)
    joints[0, 12] = torch.tensor([-1.3, 0.5])
    joints[0, 15] = torch.tensor([-1.2, -1.4])
    verts = torch.full((1, 6890, 2), -1.25)
    assert head_box(joints, verts, 32, torch.tensor([332, 583])).tolist() == [[0, 0, 1, 25]]


def test_command_generate_says_what_it_wrote(tmp_path, capsys):
    import argparse

    assert command_generate(argparse.Namespace(out=str(tmp_path / "g.npz"), seed=3)) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {tmp_path / 'g.npz'}") and "6890 vertices" in line and "24 joints" in line
