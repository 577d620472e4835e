"""A module's DOCUMENTATION options against its argument_spec (type, default, choices,
required, elements, suboptions), the check every module's unit test makes."""


def compare(spec, options, path=''):
    assert sorted(spec) == sorted(options), path
    for key, s in spec.items():
        o = options[key]
        where = path + key
        assert o.get('type', 'str') == s.get('type', 'str'), where
        assert o.get('default') == s.get('default'), where
        assert sorted(o.get('choices') or []) == sorted(s.get('choices') or []), where
        assert bool(o.get('required')) == bool(s.get('required')), where
        assert o.get('elements') == s.get('elements'), where
        if s.get('options'):
            compare(s['options'], o.get('suboptions') or {}, where + '.')
