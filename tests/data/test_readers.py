import json

import pytest

from captioning.data.examples import CaptionExample
from captioning.data.readers import (
    assign_validation_split,
    group_by_split,
    read_coco,
    read_csv,
    read_dataset,
    read_flickr,
    read_karpathy,
)


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_read_coco_several_captions_per_image_and_split_from_file_name(tmp_path):
    path = write_json(
        tmp_path / "captions_val2014.json",
        {
            "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
            "annotations": [
                {"image_id": 1, "caption": "A cat."},
                {"image_id": 2, "caption": "A dog."},
                {"image_id": 1, "caption": "A cat on a mat."},
            ],
        },
    )
    assert read_coco(path, "/imgs") == [
        CaptionExample("/imgs/a.jpg", "A cat.", "1", "val"),
        CaptionExample("/imgs/b.jpg", "A dog.", "2", "val"),
        CaptionExample("/imgs/a.jpg", "A cat on a mat.", "1", "val"),
    ]


@pytest.mark.parametrize(
    "file_name, split",
    [("captions_train2014.json", "train"), ("captions_test.json", "test"), ("captions.json", "")],
)
def test_read_coco_split_from_file_name(tmp_path, file_name, split):
    path = write_json(
        tmp_path / file_name,
        {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "caption": "x"}]},
    )
    assert read_coco(path, "/imgs")[0].split == split


def test_read_karpathy_maps_restval_to_train_and_uses_filepath(tmp_path):
    path = write_json(
        tmp_path / "dataset_coco.json",
        {
            "images": [
                {
                    "filepath": "val2014",
                    "filename": "v.jpg",
                    "split": "restval",
                    "imgid": 0,
                    "cocoid": 42,
                    "sentences": [{"raw": "A man.", "tokens": ["a", "man"]}, {"tokens": ["a", "person"]}],
                },
                {
                    "filepath": "val2014",
                    "filename": "w.jpg",
                    "split": "val",
                    "imgid": 1,
                    "cocoid": 43,
                    "sentences": [{"raw": "A bus."}],
                },
                {
                    "filepath": "train2014",
                    "filename": "t.jpg",
                    "split": "train",
                    "imgid": 2,
                    "cocoid": 44,
                    "sentences": [{"raw": "A tree."}],
                },
                {
                    "filepath": "val2014",
                    "filename": "x.jpg",
                    "split": "test",
                    "imgid": 3,
                    "cocoid": 45,
                    "sentences": [{"raw": "A car."}],
                },
            ]
        },
    )
    assert read_karpathy(path, "/coco") == [
        CaptionExample("/coco/val2014/v.jpg", "A man.", "42", "train"),
        CaptionExample("/coco/val2014/v.jpg", "a person", "42", "train"),
        CaptionExample("/coco/val2014/w.jpg", "A bus.", "43", "val"),
        CaptionExample("/coco/train2014/t.jpg", "A tree.", "44", "train"),
        CaptionExample("/coco/val2014/x.jpg", "A car.", "45", "test"),
    ]


def test_read_karpathy_flickr_has_no_filepath_or_cocoid(tmp_path):
    path = write_json(
        tmp_path / "dataset_flickr8k.json",
        {"images": [{"filename": "f.jpg", "split": "test", "imgid": 7, "sentences": [{"raw": "A kid."}]}]},
    )
    assert read_karpathy(path, "/flickr") == [CaptionExample("/flickr/f.jpg", "A kid.", "7", "test")]


def test_read_flickr_token_file_with_split_files(tmp_path):
    captions = tmp_path / "Flickr8k.token.txt"
    captions.write_text(
        "1000268201_693b08cb0e.jpg#0\tA child in a pink dress .\n"
        "1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .\n"
        "\n"
        "1001773457_577c3a7d70.jpg#0\tA black dog and a spotted dog are fighting\n"
        "1002674143_1b742ab4b8.jpg#0\tA little girl covered in paint\n"
    )
    (tmp_path / "train.txt").write_text("1000268201_693b08cb0e.jpg\n")
    (tmp_path / "dev.txt").write_text("1001773457_577c3a7d70.jpg\n\n")
    examples = read_flickr(captions, "/f8k", split_files={"train": tmp_path / "train.txt", "dev": tmp_path / "dev.txt"})
    assert examples == [
        CaptionExample(
            "/f8k/1000268201_693b08cb0e.jpg",
            "A child in a pink dress .",
            "1000268201_693b08cb0e.jpg",
            "train",
        ),
        CaptionExample(
            "/f8k/1000268201_693b08cb0e.jpg",
            "A girl going into a wooden building .",
            "1000268201_693b08cb0e.jpg",
            "train",
        ),
        CaptionExample(
            "/f8k/1001773457_577c3a7d70.jpg",
            "A black dog and a spotted dog are fighting",
            "1001773457_577c3a7d70.jpg",
            "val",
        ),
        CaptionExample(
            "/f8k/1002674143_1b742ab4b8.jpg",
            "A little girl covered in paint",
            "1002674143_1b742ab4b8.jpg",
            "",
        ),
    ]


def test_read_flickr_results_csv(tmp_path):
    captions = tmp_path / "results.csv"
    captions.write_text(
        "image_name| comment_number| comment\n"
        '1000092795.jpg| 0| Two young guys with shaggy hair, "look" at their hands .\n'
        "1000092795.jpg| 1| Two friends enjoy time spent together .\n"
        "2199200615.jpg| 4 A dog runs across the grass .\n"
    )
    assert read_flickr(captions, "/f30k") == [
        CaptionExample(
            "/f30k/1000092795.jpg",
            'Two young guys with shaggy hair, "look" at their hands .',
            "1000092795.jpg",
        ),
        CaptionExample("/f30k/1000092795.jpg", "Two friends enjoy time spent together .", "1000092795.jpg"),
        # The row missing a '|' is kept with an empty caption for validation to count.
        CaptionExample("/f30k/2199200615.jpg", "", "2199200615.jpg"),
    ]


def test_read_flickr_rejects_a_file_that_is_not_a_token_file(tmp_path):
    captions = tmp_path / "captions.txt"
    captions.write_text("image,caption\na.jpg,A dog\n")
    with pytest.raises(ValueError, match=r"captions\.txt has a line that is not"):
        read_flickr(captions, "/f8k")


def test_read_csv_relative_paths_quoted_commas_and_split(tmp_path):
    (tmp_path / "data.csv").write_text(
        "image_path,caption,split\n"
        'imgs/a.jpg,"A dog, a cat, and a bird",train\n'
        "/abs/b.png,A plain caption,\n"
        'imgs/c.jpg,"Multi\nline",validation\n'
    )
    assert read_csv(tmp_path / "data.csv") == [
        CaptionExample(f"{tmp_path}/imgs/a.jpg", "A dog, a cat, and a bird", f"{tmp_path}/imgs/a.jpg", "train"),
        CaptionExample("/abs/b.png", "A plain caption", "/abs/b.png", ""),
        CaptionExample(f"{tmp_path}/imgs/c.jpg", "Multi\nline", f"{tmp_path}/imgs/c.jpg", "val"),
    ]


def test_read_csv_without_split_column(tmp_path):
    (tmp_path / "data.csv").write_text("image_path,caption\na.jpg,A dog\n")
    assert read_csv(tmp_path / "data.csv", image_dir="/imgs") == [CaptionExample("/imgs/a.jpg", "A dog", "/imgs/a.jpg")]


def test_read_dataset_dispatches(tmp_path):
    (tmp_path / "data.csv").write_text("image_path,caption\na.jpg,A dog\n")
    assert read_dataset("csv", tmp_path / "data.csv") == read_csv(tmp_path / "data.csv")
    captions = tmp_path / "token.txt"
    captions.write_text("a.jpg#0\tA dog\n")
    assert read_dataset("flickr", captions, "/imgs", split_files={"test": captions}) == read_flickr(captions, "/imgs")


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda p: read_dataset("voc", p, "/imgs"),
            "unknown dataset format 'voc'; expected one of: coco, karpathy, flickr, csv",
        ),
        (lambda p: read_dataset("coco", p), "dataset format 'coco' needs image_dir"),
        (lambda p: read_coco(p / "nope.json", "/imgs"), "nope.json does not exist"),
        (lambda p: read_csv(p / "nope.csv"), "nope.csv does not exist"),
    ],
)
def test_usage_errors(tmp_path, call, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        call(tmp_path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON: Expecting property name"),
        ("[1, 2]", "has no 'images' list"),
        ('{"images": []}', "has no 'annotations' list"),
        ('{"images": [{"file_name": "a.jpg"}], "annotations": []}', "has an entry without 'id'"),
        (
            '{"images": [], "annotations": [{"image_id": 9, "caption": "x"}]}',
            "caption for image_id 9, which is not in its 'images' list",
        ),
    ],
)
def test_read_coco_malformed_json(tmp_path, content, message):
    path = tmp_path / "captions_train2014.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        read_coco(path, "/imgs")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_read_karpathy_unknown_split(tmp_path):
    path = write_json(
        tmp_path / "k.json",
        {"images": [{"filename": "a.jpg", "split": "holdout", "imgid": 0, "sentences": []}]},
    )
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        read_karpathy(path, "/imgs")


@pytest.mark.parametrize(
    "content, message",
    [
        ("path,text\na.jpg,A dog\n", "needs an 'image_path,caption' header, found 'path,text'"),
        ("", "found 'nothing'"),
        ('image_path,caption\na.jpg,"A" dog\nb.jpg,B\n', "is malformed at line 2: ',' expected after"),
        ('image_path,caption\na.jpg,"A dog\nb.jpg,B\n', "is malformed at line 3: unexpected end of data"),
    ],
)
def test_read_csv_malformed(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_csv(path)


def examples_for(image_ids, captions_per_image=3, split=""):
    return [
        CaptionExample(f"/imgs/{image_id}.jpg", f"caption {n}", image_id, split)
        for image_id in image_ids
        for n in range(captions_per_image)
    ]


def test_assign_validation_split_is_deterministic_and_keeps_images_together():
    examples = examples_for([f"img{i}" for i in range(200)]) + examples_for(["t1", "t2"], split="test")
    result = assign_validation_split(examples, fraction=0.1, seed=3)
    assert result == assign_validation_split(list(reversed(examples)), fraction=0.1, seed=3)[::-1]
    splits_of_image = {}
    for example in result:
        splits_of_image.setdefault(example.image_id, set()).add(example.split)
    assert all(len(splits) == 1 for splits in splits_of_image.values())
    val_images = {image_id for image_id, splits in splits_of_image.items() if splits == {"val"}}
    assert len(val_images) == 20
    assert {splits_of_image["t1"].pop(), splits_of_image["t2"].pop()} == {"test"}
    assert {example.split for example in result} == {"train", "val", "test"}
    other_seed = assign_validation_split(examples, fraction=0.1, seed=4)
    assert {e.image_id for e in other_seed if e.split == "val"} != val_images


def test_assign_validation_split_leaves_an_existing_val_split_alone():
    examples = examples_for(["a"], split="train") + examples_for(["b"], split="val") + examples_for(["c"])
    assert assign_validation_split(examples) == examples


def test_assign_validation_split_small_dataset_gets_one_val_image():
    result = assign_validation_split(examples_for(["a", "b", "c"], split="train"), fraction=0.05)
    assert sorted(group_by_split(result)) == ["train", "val"]
    assert len({e.image_id for e in group_by_split(result)["val"]}) == 1


def test_group_by_split_keeps_order():
    examples = examples_for(["a"], 1, "train") + examples_for(["b"], 1, "val") + examples_for(["c"], 1, "train")
    assert group_by_split(examples) == {"train": [examples[0], examples[2]], "val": [examples[1]]}
