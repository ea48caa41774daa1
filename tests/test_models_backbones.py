"""VGG19 / SphereFace-20 backbones: stand-in status and warning, weight loading round trips, errors."""

import warnings

import pytest
import torch

from lwgan.errors import UserError
from lwgan.models import backbones
from lwgan.models.backbones import SphereFace20, VGG19Features, build_sphereface, build_vgg19


def _build_quietly(fn, path=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(path)


def test_vgg19_layout_matches_torchvision_indices_and_relu_outputs():
    vgg = VGG19Features()
    convs = {i: m for i, m in enumerate(vgg.features) if isinstance(m, torch.nn.Conv2d)}
    assert sorted(convs) == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    assert [convs[i].out_channels for i in (0, 5, 10, 19, 28)] == [64, 128, 256, 512, 512]
    feats = vgg(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    assert all((f >= 0).all() for f in feats)  # relu outputs


def test_sphereface_outputs_four_stages_and_embedding():
    net = SphereFace20()
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert n_convs == 20
    feats = net(torch.randn(2, 3, 112, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 56, 48), (128, 28, 24), (256, 14, 12), (512, 7, 6), (512,)]
    assert "relu3_9.weight" in net.state_dict() and "fc5.weight" in net.state_dict()


def test_stand_in_is_frozen_deterministic_and_warns_once():
    backbones._warn_stand_in_once.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vgg_a, status = build_vgg19(None)
        vgg_b, _ = build_vgg19(None)
    msgs = [str(w.message) for w in caught if "vgg19" in str(w.message)]
    assert len(msgs) == 1 and "stand-in" in msgs[0]
    assert status.status == "stand-in" and status.path is None and "random" in status.note
    assert all(not p.requires_grad for p in vgg_a.parameters()) and not vgg_a.training
    for pa, pb in zip(vgg_a.parameters(), vgg_b.parameters()):
        assert torch.equal(pa, pb)
    face, fstatus = _build_quietly(build_sphereface)
    assert fstatus.name == "sphereface20" and fstatus.status == "stand-in"
    assert all(not p.requires_grad for p in face.parameters())


def test_vgg19_loads_full_torchvision_state_dict_and_features_only(tmp_path):
    torch.manual_seed(1)
    source = VGG19Features()
    full = {k: v.clone() for k, v in source.state_dict().items()}
    # a real torchvision vgg19 dict also has deeper features and the classifier: they are ignored
    full["features.30.weight"] = torch.zeros(512, 512, 3, 3)
    full["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(full, tmp_path / "vgg19_full.pth")
    vgg, status = build_vgg19(str(tmp_path / "vgg19_full.pth"))
    assert status.status == "pretrained" and status.path.endswith("vgg19_full.pth")
    x = torch.randn(1, 3, 32, 32)
    for a, b in zip(vgg(x), source(x)):
        assert torch.allclose(a, b)
    features_only = {k.removeprefix("features."): v for k, v in source.state_dict().items()}
    torch.save(features_only, tmp_path / "vgg19_features.pth")
    vgg2, _ = build_vgg19(str(tmp_path / "vgg19_features.pth"))
    assert torch.equal(vgg2.features[28].weight, source.features[28].weight)
    assert all(not p.requires_grad for p in vgg2.parameters())


def test_sphereface_loads_and_ignores_fc6(tmp_path):
    torch.manual_seed(2)
    source = SphereFace20()
    state = dict(source.state_dict())
    state["fc6.weight"] = torch.zeros(512, 10574)  # AngleLinear classifier of the public checkpoint
    torch.save(state, tmp_path / "sphere20a.pth")
    net, status = build_sphereface(str(tmp_path / "sphere20a.pth"))
    assert status.status == "pretrained"
    assert torch.equal(net.fc5.weight, source.fc5.weight)


def test_missing_file_names_the_file_and_key(tmp_path):
    with pytest.raises(UserError, match=r"vgg_weights.*nope\.pth"):
        build_vgg19(str(tmp_path / "nope.pth"))
    with pytest.raises(UserError, match=r"face_weights.*nope\.pth"):
        build_sphereface(str(tmp_path / "nope.pth"))


def test_mismatched_file_names_missing_and_mismatched_keys(tmp_path):
    state = {k: v for k, v in VGG19Features().state_dict().items() if k != "features.28.weight"}
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, tmp_path / "vgg16.pth")
    with pytest.raises(UserError) as err:
        build_vgg19(str(tmp_path / "vgg16.pth"))
    msg = str(err.value)
    assert "vgg16.pth" in msg and "features.28.weight" in msg and "features.0.weight" in msg


def test_not_a_state_dict(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="junk.pth"):
        build_sphereface(str(tmp_path / "junk.pth"))
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(UserError, match="state dict"):
        build_sphereface(str(tmp_path / "list.pth"))


def test_sphereface_stand_in_keeps_every_level_order_one():
    face, _ = _build_quietly(build_sphereface)
    with torch.no_grad():
        feats = face(torch.rand(2, 3, 112, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    scales = [f.abs().mean().item() for f in feats]
    assert all(0.1 < s < 3.0 for s in scales), scales


def test_sphereface_scaled_crop_for_small_images(tmp_path):
    import warnings

    import torch

    from lwgan.errors import UserError
    from lwgan.models.losses import face_loss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        face, status = build_sphereface(None, crop=56)
    assert face.input_size == (56, 48) and status.status == "stand-in"
    assert face.fc5.in_features == 512 * 4 * 3  # 56x48 -> 28x24 -> 14x12 -> 7x6 -> 4x3
    feats = face(torch.zeros(2, 3, 56, 48))
    assert feats[-1].shape == (2, 512)
    img = torch.rand(2, 3, 64, 64) * 2 - 1
    box = torch.tensor([[20, 4, 40, 24], [10, 10, 30, 30]])
    assert face_loss(face, img, img, box).item() == 0.0  # same crops, same features
    assert face_loss(face, img, -img, box).item() > 0.0
    torch.save(face.state_dict(), tmp_path / "w.pth")
    with pytest.raises(UserError, match="face_crop: 56 needs the stand-in"):
        build_sphereface(str(tmp_path / "w.pth"), crop=56)
